// HTTP API on the node's port: publish, healthz, metrics, introspection.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, signJwt, nowSec, waitUntil } from './lib/node.mjs';

const T = { timeout: 30000 };

describe('http', () => {
  let node, userToken, adminToken, pubToken, noPubToken;
  before(async () => {
    node = await startNode([]);
    userToken = node.token({ sub: 'u_1', org: 'org_123' });
    adminToken = node.token({ sub: 'u_admin', org: 'org_123', admin: true });
    pubToken = node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.x.>'] });
    noPubToken = node.token({ sub: 'svc2', org: 'org_123' });
  });
  after(async () => {
    await node?.stop();
  });

  function assertErrorBody(r, status, what) {
    assert.equal(r.status, status, `${what}: expected ${status}, got ${r.status} ${r.text}`);
    assert.ok(r.json && typeof r.json === 'object', `${what}: error body must be JSON, got ${JSON.stringify(r.text)}`);
    assert.equal(typeof r.json.code, 'string', `${what}: body ${r.text}`);
    assert.ok(r.json.code.length > 0, `${what}: empty code`);
    assert.equal(typeof r.json.message, 'string', `${what}: body ${r.text}`);
  }

  it('GET /healthz -> 200 {"status":"ok"}', T, async () => {
    const r = await node.http('GET', '/healthz');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json?.status, 'ok', `body: ${r.text}`);
  });

  it('POST /v1/publish -> 202 {"id"} with distinct ids', T, async () => {
    const a = await node.publishOk(pubToken, 'events.org_123.x.y.z.1', { a: 1 });
    const b = await node.publishOk(pubToken, 'events.org_123.x.y.z.1', { a: 2 });
    assert.notEqual(a, b, 'each publish gets its own event id');
  });

  it('POST /v1/publish -> 400 for bad JSON, bad topics and wildcards', T, async () => {
    const cases = {
      'truncated JSON': '{"topic":',
      'not JSON': 'hello',
      'JSON array': '[]',
      'missing topic': { data: { a: 1 } },
      'topic not a string': { topic: 42, data: {} },
      'empty token': { topic: 'events.org_123.x..y', data: {} },
      'trailing dot': { topic: 'events.org_123.x.y.', data: {} },
      'bad characters': { topic: 'events.org_123.x.a b', data: {} },
      '17 tokens': { topic: 'events.org_123.x.' + Array.from({ length: 14 }, (_, i) => `t${i}`).join('.'), data: {} },
      'more than 256 bytes': { topic: 'events.org_123.x.' + 'a'.repeat(250), data: {} },
      'wildcard *': { topic: 'events.org_123.x.*', data: {} },
      'wildcard >': { topic: 'events.org_123.x.>', data: {} },
      'wildcard * in the middle': { topic: 'events.org_123.x.*.y', data: {} },
    };
    for (const [name, body] of Object.entries(cases)) {
      assertErrorBody(await node.publish(pubToken, body), 400, name);
    }
  });

  it('POST /v1/publish -> 401 without a valid token', T, async () => {
    const body = { topic: 'events.org_123.x.a', data: {} };
    const claims = node.claims({ sub: 'svc', org: 'org_123', pub: ['events.org_123.x.>'] });
    assertErrorBody(await node.publish(undefined, body), 401, 'no Authorization header');
    assertErrorBody(await node.publish('garbage', body), 401, 'garbage token');
    assertErrorBody(await node.publish(signJwt(claims, 'wrong-secret'), body), 401, 'wrong signature');
    assertErrorBody(await node.publish(node.sign({ ...claims, iat: nowSec() - 7200, exp: nowSec() - 3600 }), body), 401, 'expired token');
    assertErrorBody(await node.publish(signJwt(claims, null, { alg: 'none' }), body), 401, 'alg none');
    assertErrorBody(await node.publish(undefined, body, { headers: { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } }), 401, 'Basic auth');
  });

  it('POST /v1/publish -> 403 for topics outside pub_allow', T, async () => {
    assertErrorBody(await node.publish(pubToken, { topic: 'events.org_123.other.a', data: {} }), 403, 'topic outside pub_allow');
    assertErrorBody(await node.publish(pubToken, { topic: 'events.org_123.x', data: {} }), 403, 'parent of the pub_allow pattern');
    assertErrorBody(await node.publish(pubToken, { topic: 'events.org_456.x.a', data: {} }), 403, 'other org');
    assertErrorBody(await node.publish(noPubToken, { topic: 'events.org_123.x.a', data: {} }), 403, 'token without pub_allow');
  });

  it('a 403 publish is not delivered', T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    await c.subscribe('events.org_123.>');
    const r = await node.publish(pubToken, { topic: 'events.org_123.other.a', data: { leak: true } });
    assert.equal(r.status, 403);
    const id = await node.publishOk(pubToken, 'events.org_123.x.sentinel', {});
    await c.waitEvent((e) => e.id === id);
    assert.deepEqual(c.events((e) => e.topic === 'events.org_123.other.a'), []);
  });

  for (const path of ['/v1/introspect/sessions', '/v1/introspect/topics']) {
    it(`GET ${path}: 401 without/with a bad token, 403 for non-admin, 200 for admin`, T, async () => {
      assertErrorBody(await node.http('GET', path), 401, `${path} without token`);
      assertErrorBody(await node.http('GET', path, { token: signJwt(node.claims({ admin: true }), 'wrong-secret') }), 401, `${path} with bad signature`);
      assertErrorBody(await node.http('GET', path, { token: userToken }), 403, `${path} as non-admin`);
      assertErrorBody(await node.http('GET', path, { token: pubToken }), 403, `${path} as publisher`);
      const r = await node.http('GET', path, { token: adminToken });
      assert.equal(r.status, 200, r.text);
      const key = path.endsWith('sessions') ? 'sessions' : 'topics';
      assert.ok(Array.isArray(r.json?.[key]), `body: ${r.text}`);
    });
  }

  it('/v1/introspect/sessions lists a live session with its subscriptions, and drops it on close', T, async (t) => {
    const c = await node.connect({ t, token: node.token({ sub: 'u_7', org: 'org_123' }) });
    await c.subscribe('events.org_123.intro.a');
    await c.subscribe('events.org_123.intro.>');
    const session = c.welcome.session;
    const entry = await waitUntil(async () => (await node.sessions(adminToken)).find((s) => s.session === session), { message: 'the session in introspection' });
    assert.equal(entry.user, 'u_7');
    assert.equal(entry.org, 'org_123');
    await waitUntil(async () => {
      const e = (await node.sessions(adminToken)).find((s) => s.session === session);
      return e && Array.isArray(e.subscriptions) && e.subscriptions.length === 2;
    }, { message: 'both subscriptions listed' });
    const e2 = (await node.sessions(adminToken)).find((s) => s.session === session);
    assert.deepEqual([...e2.subscriptions].sort(), ['events.org_123.intro.>', 'events.org_123.intro.a'].sort());
    await c.unsubscribe('events.org_123.intro.a');
    await waitUntil(async () => {
      const e = (await node.sessions(adminToken)).find((s) => s.session === session);
      return e && e.subscriptions.length === 1 && e.subscriptions[0] === 'events.org_123.intro.>';
    }, { message: 'unsubscribed pattern removed from the session' });
    c.ws.close(1000);
    await c.waitClose(5000);
    await waitUntil(async () => !(await node.sessions(adminToken)).some((s) => s.session === session), { message: 'the session to vanish after close' });
  });

  it('/v1/introspect/topics counts subscribers and drops a topic with its last subscriber', T, async (t) => {
    const P = 'events.org_123.intro.count.*';
    const a = await node.connect({ t, token: userToken });
    const b = await node.connect({ t, token: userToken });
    await a.subscribe(P);
    await b.subscribe(P);
    await waitUntil(async () => (await node.subscribers(adminToken, P)) === 2, { message: `${P} with 2 subscribers` });
    a.ws.close(1000);
    await a.waitClose(5000);
    await waitUntil(async () => (await node.subscribers(adminToken, P)) === 1, { message: `${P} with 1 subscriber` });
    assert.ok((await node.topics(adminToken)).some((x) => x.pattern === P), 'topic still listed with one subscriber');
    b.terminate(); // abrupt disconnect must clean up too
    await b.waitClose(5000);
    await waitUntil(async () => !(await node.topics(adminToken)).some((x) => x.pattern === P), { message: `${P} to vanish` });
  });

  it('GET /metrics exposes the documented metrics', T, async (t) => {
    // cause one close so that switchyard_closes_total has a sample
    const c = await node.connect({ t, via: 'none' });
    c.send({ type: 'auth', id: '1', token: 'not-a-jwt' });
    await c.waitClose(5000);
    const r = await node.http('GET', '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain/, 'Prometheus text content type');
    const m = await waitUntil(async () => {
      const mm = await node.metrics();
      return mm.get('switchyard_closes_total', { code: '4401' }) >= 1 ? mm : null;
    }, { message: 'switchyard_closes_total{code="4401"} >= 1' });
    for (const name of [
      'switchyard_connections',
      'switchyard_subscriptions',
      'switchyard_topic_actors',
      'switchyard_events_in_total',
      'switchyard_events_out_total',
      'switchyard_dropped_total',
      'switchyard_closes_total',
    ]) {
      assert.ok(m.has(name), `/metrics lacks ${name}:\n${m.text}`);
    }
  });

  it('metrics move: connections, subscriptions, topic actors, events in/out', T, async (t) => {
    const P = 'events.org_123.x.metrics.*';
    const get = async (name, labels) => (await node.metrics()).get(name, labels);
    // every client of the earlier tests has been closed: the gauges must settle at 0
    for (const g of ['switchyard_connections', 'switchyard_subscriptions', 'switchyard_topic_actors']) {
      await waitUntil(async () => (await get(g)) === 0, { message: `${g} to be 0 once all clients are gone` });
    }
    const before = await node.metrics();

    const c = await node.connect({ t, token: userToken });
    await waitUntil(async () => (await get('switchyard_connections')) === 1, { message: 'switchyard_connections == 1' });
    await c.subscribe(P);
    await waitUntil(async () => (await get('switchyard_subscriptions')) === 1, { message: 'switchyard_subscriptions == 1' });
    await waitUntil(async () => (await get('switchyard_topic_actors')) === 1, { message: 'switchyard_topic_actors == 1' });

    const id = await node.publishOk(pubToken, 'events.org_123.x.metrics.a', { m: 1 });
    await waitUntil(async () => (await get('switchyard_events_in_total')) >= before.get('switchyard_events_in_total') + 1, {
      message: 'switchyard_events_in_total to increase',
    });
    await c.waitEvent((e) => e.id === id);
    await waitUntil(async () => (await get('switchyard_events_out_total')) >= before.get('switchyard_events_out_total') + 1, {
      message: 'switchyard_events_out_total to increase',
    });

    c.ws.close(1000);
    await c.waitClose(5000);
    for (const g of ['switchyard_connections', 'switchyard_subscriptions', 'switchyard_topic_actors']) {
      await waitUntil(async () => (await get(g)) === 0, { message: `${g} back to 0 after close` });
    }
  });
});
