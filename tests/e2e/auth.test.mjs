// Authentication: header / query / auth-frame auth, bad tokens, auth timeout, token expiry and refresh.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, signJwt, decodeJwt, nowSec, sleep, withTimeout } from './lib/node.mjs';

const AUTH_TIMEOUT_MS = 500;
const T = { timeout: 30000 };

/** Sleeps until wall-clock time `at` (ms), failing early if the client gets closed. */
async function stayOpenUntil(c, at) {
  const wait = Math.max(0, at - Date.now());
  const closed = c.closed.then((ci) => {
    throw new Error(`connection was closed with ${ci.code} (${ci.reason}) at ${new Date(ci.at).toISOString()}, expected it to stay open until ${new Date(at).toISOString()}`);
  });
  await Promise.race([sleep(wait), closed]);
}

describe('auth', () => {
  let node;
  before(async () => {
    node = await startNode(['--auth-timeout', `${AUTH_TIMEOUT_MS}ms`]);
  });
  after(async () => {
    await node?.stop();
  });

  function assertWelcome(w, { user = 'u_1', org = 'org_123' } = {}) {
    assert.equal(w.type, 'welcome');
    assert.equal(typeof w.session, 'string', `welcome.session: ${JSON.stringify(w)}`);
    assert.ok(w.session.length > 0, 'welcome.session must be non-empty');
    assert.equal(w.user, user);
    assert.equal(w.org, org);
    assert.ok(Number.isInteger(w.heartbeat_ms) && w.heartbeat_ms > 0, `welcome.heartbeat_ms must be a positive integer: ${JSON.stringify(w)}`);
  }

  it('Authorization header: welcome first, and the connection outlives the auth timeout', T, async (t) => {
    const c = await node.connect({ t, token: node.token({ sub: 'u_1', org: 'org_123' }), via: 'header' });
    assertWelcome(c.welcome);
    await stayOpenUntil(c, c.openedAt + AUTH_TIMEOUT_MS * 2 + 100);
    await c.assertAlive('events.org_123.auth.header');
    assert.equal(c.history.filter((f) => f.type === 'welcome').length, 1, 'exactly one welcome');
  });

  it('?token= query: welcome, distinct session ids per connection', T, async (t) => {
    const token = node.token({ sub: 'u_2', org: 'org_123' });
    const a = await node.connect({ t, token, via: 'query' });
    const b = await node.connect({ t, token, via: 'query' });
    assertWelcome(a.welcome, { user: 'u_2' });
    assertWelcome(b.welcome, { user: 'u_2' });
    assert.notEqual(a.welcome.session, b.welcome.session, 'each connection gets its own session id');
    await stayOpenUntil(a, a.openedAt + AUTH_TIMEOUT_MS * 2 + 100);
    await a.assertAlive('events.org_123.auth.query');
  });

  it('auth frame: welcome then ok with the frame id, and the connection outlives the auth timeout', T, async (t) => {
    const c = await node.connect({ t, via: 'none' });
    c.send({ type: 'auth', id: '1', token: node.token({ sub: 'u_3', org: 'org_123' }) });
    const first = await c.waitFor(() => true, { what: 'first frame after auth' });
    assertWelcome(first, { user: 'u_3' });
    const second = await c.waitFor(() => true, { what: 'second frame after auth' });
    assert.deepEqual({ type: second.type, id: second.id }, { type: 'ok', id: '1' }, `second frame: ${JSON.stringify(second)}`);
    await stayOpenUntil(c, c.openedAt + AUTH_TIMEOUT_MS * 2 + 100);
    await c.assertAlive('events.org_123.auth.frame');
  });

  it('a hand-signed HS256 token with the tool\'s claims is accepted (sanity check of the test signer)', T, async (t) => {
    const claims = node.claims({ sub: 'u_4', org: 'org_123' });
    const c = await node.connect({ t, token: node.sign(claims), via: 'header' });
    assertWelcome(c.welcome, { user: 'u_4' });
  });

  const badTokens = {
    'wrong signature': (n) => signJwt(n.claims(), 'definitely-not-the-secret'),
    expired: (n) => n.sign({ ...n.claims(), iat: nowSec() - 7200, exp: nowSec() - 3600 }),
    'alg none': (n) => signJwt(n.claims(), null, { alg: 'none' }),
    'alg none with header alg "None"': (n) => signJwt(n.claims(), null, { alg: 'none', header: { alg: 'None', typ: 'JWT' } }),
    'missing org claim': (n) => {
      const c = n.claims();
      delete c.org;
      return n.sign(c);
    },
    'tampered payload (sub changed after signing)': (n) => {
      const tok = n.token({ sub: 'u_1' });
      const { payload } = decodeJwt(tok);
      const [h, , s] = tok.split('.');
      return `${h}.${Buffer.from(JSON.stringify({ ...payload, sub: 'u_admin' })).toString('base64url')}.${s}`;
    },
    'not a JWT': () => 'not-a-jwt',
  };

  for (const [name, make] of Object.entries(badTokens)) {
    it(`auth frame with ${name} token -> error unauthorized, close 4401`, T, async (t) => {
      const c = await node.connect({ t, via: 'none' });
      c.send({ type: 'auth', id: '1', token: make(node) });
      const close = await c.waitClose(5000);
      const err = c.history.find((f) => f.type === 'error');
      assert.ok(err, `expected an error frame before the close, got ${JSON.stringify(c.history)}`);
      assert.equal(err.code, 'unauthorized', `error frame: ${JSON.stringify(err)}`);
      assert.equal(err.id, '1', `error frame should carry the auth frame id: ${JSON.stringify(err)}`);
      assert.equal(typeof err.message, 'string');
      assert.equal(close.code, 4401, `close code (reason ${JSON.stringify(close.reason)})`);
      assert.ok(!c.history.some((f) => f.type === 'welcome'), `no welcome for a bad token: ${JSON.stringify(c.history)}`);
    });
  }

  for (const via of ['header', 'query']) {
    for (const name of ['wrong signature', 'expired', 'alg none']) {
      it(`${via} auth with ${name} token is rejected (HTTP 401 or close 4401, never a welcome)`, T, async (t) => {
        let c;
        try {
          c = await node.connect({ t, token: badTokens[name](node), via, expectWelcome: false });
        } catch (e) {
          assert.equal(e.status, 401, `upgrade rejection should be HTTP 401: ${e.message}`);
          return;
        }
        const close = await c.waitClose(5000);
        assert.equal(close.code, 4401, `close code (reason ${JSON.stringify(close.reason)}), frames ${JSON.stringify(c.history)}`);
        assert.ok(!c.history.some((f) => f.type === 'welcome'), `no welcome for a bad token: ${JSON.stringify(c.history)}`);
        const err = c.history.find((f) => f.type === 'error');
        if (err) assert.equal(err.code, 'unauthorized', `error frame: ${JSON.stringify(err)}`);
      });
    }
  }

  it('no auth at all -> close 4401 after --auth-timeout, not before', T, async (t) => {
    const c = await node.connect({ t, via: 'none' });
    const close = await c.waitClose(AUTH_TIMEOUT_MS + 5000);
    assert.equal(close.code, 4401, `close code (reason ${JSON.stringify(close.reason)})`);
    const elapsed = close.at - c.openedAt;
    assert.ok(elapsed >= AUTH_TIMEOUT_MS - 100, `closed after ${elapsed} ms, before the ${AUTH_TIMEOUT_MS} ms auth timeout`);
    assert.ok(!c.history.some((f) => f.type === 'welcome'));
  });

  it('a token that expires while connected -> close 4401 at expiry', T, async (t) => {
    const token = node.token({ sub: 'u_5', org: 'org_123', ttl: '2s' });
    const { exp } = decodeJwt(token).payload;
    assert.ok(Number.isInteger(exp), `tool token must carry exp: ${JSON.stringify(decodeJwt(token).payload)}`);
    const c = await node.connect({ t, token, via: 'header' });
    await c.subscribe('events.org_123.expiry.x');
    const close = await c.waitClose(exp * 1000 - Date.now() + 5000);
    assert.equal(close.code, 4401, `close code (reason ${JSON.stringify(close.reason)})`);
    assert.ok(close.at >= exp * 1000 - 200, `closed ${exp * 1000 - close.at} ms before the token's exp`);
    assert.ok(close.at <= exp * 1000 + 3000, `closed ${close.at - exp * 1000} ms after the token's exp`);
  });

  it('a fresh auth frame before expiry gets only ok and keeps the connection open past the first expiry', T, async (t) => {
    const first = node.token({ sub: 'u_6', org: 'org_123', ttl: '2s' });
    const exp1 = decodeJwt(first).payload.exp;
    const c = await node.connect({ t, token: first, via: 'header' });
    const fresh = node.token({ sub: 'u_6', org: 'org_123', ttl: '6s' });
    const exp2 = decodeJwt(fresh).payload.exp;
    assert.ok(exp2 >= exp1 + 3, 'test setup: fresh token must outlive the first one');
    const reply = await c.request({ type: 'auth', id: 'r1', token: fresh });
    assert.equal(reply.type, 'ok', `reply to refresh auth: ${JSON.stringify(reply)}`);
    await stayOpenUntil(c, exp1 * 1000 + 1000);
    await c.assertAlive('events.org_123.refresh.x');
    assert.equal(c.history.filter((f) => f.type === 'welcome').length, 1, `refresh must not send a second welcome: ${JSON.stringify(c.history)}`);
    const close = await withTimeout(c.closed, exp2 * 1000 - Date.now() + 5000, 'close at the refreshed expiry');
    assert.equal(close.code, 4401, `close code at refreshed expiry (reason ${JSON.stringify(close.reason)})`);
    assert.ok(close.at >= exp2 * 1000 - 200, `closed ${exp2 * 1000 - close.at} ms before the refreshed exp`);
  });
});
