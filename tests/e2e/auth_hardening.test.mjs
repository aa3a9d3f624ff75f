// Token and authorization hardening: the org fence for publishing, per-user
// limits per (org, sub), nbf/iat, admin scoping, RS256/ES256 keys from PEM and
// JWKS files, algorithm confusion, bad key files.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BIN, startNode, signJwt, nowSec, waitUntil } from './lib/node.mjs';

const T = { timeout: 30000 };

/** Runs the binary to completion (it must exit by itself). */
function run(args) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.error, undefined, `${BIN} ${args.join(' ')}: ${r.error?.message}`);
  return r;
}

/** Opens a connection whose auth must fail; returns the close and the error frame. */
async function refused(node, t, token) {
  const c = await node.connect({ t, via: 'none' });
  c.send({ type: 'auth', id: '1', token });
  const close = await c.waitClose(5000);
  assert.ok(!c.history.some((f) => f.type === 'welcome'), `no welcome for a refused token: ${JSON.stringify(c.history)}`);
  return { close, error: c.history.find((f) => f.type === 'error') };
}

describe('auth hardening: org fences, limits, nbf/iat, admin scope', () => {
  let node;
  before(async () => {
    node = await startNode(['--max-connections-per-user', '2']);
  });
  after(async () => {
    await node?.stop();
  });

  it('a publish outside the token org gets 403 and never reaches that org', T, async (t) => {
    const b = await node.connect({ t, token: node.token({ sub: 'u_b', org: 'org_B' }) });
    await b.subscribe('events.org_B.>');
    // The token tool refuses such pub_allow entries, so these are hand-signed.
    const base = node.claims({ sub: 'svc_a', org: 'org_A' });
    const wide = node.sign({ ...base, pub_allow: ['events.>'] });
    const aimed = node.sign({ ...base, pub_allow: ['events.org_B.>'] });
    for (const [name, tok] of Object.entries({ 'events.>': wide, 'events.org_B.>': aimed })) {
      const r = await node.publish(tok, { topic: 'events.org_B.x.y.z.w', data: { leak: name } });
      assert.equal(r.status, 403, `pub_allow ${name} of org_A publishing into org_B: ${r.status} ${r.text}`);
      assert.equal(r.json?.code, 'forbidden', r.text);
    }
    // The wide token still publishes inside its own org.
    await node.publishOk(wide, 'events.org_A.x.y.z.w', {});
    // An org_B event published after the refused ones arrives; had a refused
    // one been delivered, it would have come first.
    const own = node.token({ sub: 'svc_b', org: 'org_B', pub: ['events.org_B.>'] });
    const id = await node.publishOk(own, 'events.org_B.x.y.z.sentinel', {});
    await b.waitEvent((e) => e.id === id);
    assert.deepEqual(b.events((e) => e.data?.leak !== undefined), [], 'no org_A event reached org_B');
  });

  it('the token command refuses --pub and --sub-allow outside events.<org>.>', T, () => {
    const base = ['token', '--jwt-secret', 's3cret', '--sub', 'svc', '--org', 'org_A'];
    for (const extra of [
      ['--pub', 'events.org_B.>'],
      ['--pub', 'events.>'],
      ['--pub', '>'],
      ['--sub-allow', 'events.*.x'],
      ['--pub', 'events.org_A.ok', '--pub', 'events.org_B.x'],
    ]) {
      const r = run([...base, ...extra]);
      assert.notEqual(r.status, 0, `token ${extra.join(' ')} must fail; stdout ${r.stdout}`);
      assert.match(r.stderr, /outside the org/, `stderr of token ${extra.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '', 'no token printed');
    }
    const ok = run([...base, '--pub', 'events.org_A.>', '--sub-allow', 'events.org_A.tasks.*']);
    assert.equal(ok.status, 0, ok.stderr);
  });

  it("connections per user count (org, sub): org_B's shared_sub does not lock out org_A's", T, async (t) => {
    const tokB = node.token({ sub: 'shared_sub', org: 'org_B' });
    const tokA = node.token({ sub: 'shared_sub', org: 'org_A' });
    await node.connect({ t, token: tokB });
    await node.connect({ t, token: tokB });
    const a = await node.connect({ t, token: tokA });
    assert.equal(a.welcome.org, 'org_A');
    await a.assertAlive('events.org_A.limit.x');
    const third = await node.connect({ t, token: tokB, expectWelcome: false });
    const close = await third.waitClose(5000);
    assert.equal(close.code, 4429, `third org_B connection: ${JSON.stringify(close)} ${JSON.stringify(third.history)}`);
    assert.ok(!third.history.some((f) => f.type === 'welcome'));
  });

  it('nbf or iat beyond the leeway -> 4401; within the 30 s default leeway -> welcome', T, async (t) => {
    const claims = node.claims({ sub: 'u_nbf', org: 'org_A' });
    const early = await refused(node, t, node.sign({ ...claims, nbf: nowSec() + 3600 }));
    assert.equal(early.close.code, 4401);
    assert.equal(early.error?.message, 'token not yet valid', JSON.stringify(early.error));
    const future = await refused(node, t, node.sign({ ...claims, iat: nowSec() + 3600 }));
    assert.equal(future.close.code, 4401);
    assert.equal(future.error?.message, 'token issued in the future', JSON.stringify(future.error));
    const malformed = await refused(node, t, node.sign({ ...claims, nbf: 'now' }));
    assert.equal(malformed.close.code, 4401);
    const c = await node.connect({ t, token: node.sign({ ...claims, nbf: nowSec() + 5, iat: nowSec() + 5 }) });
    assert.equal(c.welcome.user, 'u_nbf');
    const r = await node.http('GET', '/v1/introspect/topics', { token: node.sign({ ...node.claims({ admin: true }), nbf: nowSec() + 3600 }) });
    assert.equal(r.status, 401, `HTTP with a not yet valid token: ${r.status} ${r.text}`);
  });

  it('an admin of org_A sees only org_A sessions and topics; a node_admin sees every org', T, async (t) => {
    const a = await node.connect({ t, token: node.token({ sub: 'u_scope_a', org: 'org_A' }) });
    const b = await node.connect({ t, token: node.token({ sub: 'u_scope_b', org: 'org_B' }) });
    await a.subscribe('events.org_A.scope.x');
    await b.subscribe('events.org_B.scope.y');
    const adminA = node.token({ sub: 'admin_a', org: 'org_A', admin: true });
    const nodeAdmin = node.token({ sub: 'ops', org: 'org_ops', nodeAdmin: true });
    // The node admin sees both orgs: both sessions and topics exist.
    await waitUntil(async () => {
      const ids = (await node.sessions(nodeAdmin)).map((s) => s.session);
      return ids.includes(a.welcome.session) && ids.includes(b.welcome.session);
    }, { message: 'both sessions for the node admin' });
    await waitUntil(async () => {
      const ps = (await node.topics(nodeAdmin)).map((x) => x.pattern);
      return ps.includes('events.org_A.scope.x') && ps.includes('events.org_B.scope.y');
    }, { message: 'both topics for the node admin' });
    const sessions = await node.sessions(adminA);
    assert.ok(sessions.some((s) => s.session === a.welcome.session), `org_A admin sees org_A's session: ${JSON.stringify(sessions)}`);
    assert.deepEqual(sessions.filter((s) => s.org !== 'org_A'), [], 'org_A admin sees no other org');
    const topics = await node.topics(adminA);
    assert.ok(topics.some((x) => x.pattern === 'events.org_A.scope.x'), `org_A admin sees org_A's topic: ${JSON.stringify(topics)}`);
    assert.deepEqual(topics.filter((x) => !x.pattern.startsWith('events.org_A.')), [], 'org_A admin sees no other org topic');
  });
});

describe('auth hardening: RS256 and ES256 keys from PEM and JWKS files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-keys-'));
  const rsaPem = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ecPem = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsaJwk = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ecJwk = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const file = (name, text) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  const pubPem = (kp) => kp.publicKey.export({ type: 'spki', format: 'pem' });
  const rsaPath = file('rsa-main.pem', pubPem(rsaPem));
  const ecPath = file('ec-key.pem', pubPem(ecPem));
  const jwksPath = file(
    'idp.jwks.json',
    JSON.stringify({
      keys: [
        { ...rsaJwk.publicKey.export({ format: 'jwk' }), kid: 'idp-rsa', use: 'sig', alg: 'RS256' },
        { ...ecJwk.publicKey.export({ format: 'jwk' }), kid: 'idp-ec', use: 'sig', alg: 'ES256' },
      ],
    }),
  );
  const claims = (sub) => ({ sub, org: 'org_K', exp: nowSec() + 3600, iat: nowSec() });
  const good = {
    'RS256, PEM file (kid from the file name)': () => signJwt(claims('u_rsa_pem'), rsaPem.privateKey, { alg: 'RS256', kid: 'rsa-main' }),
    'ES256, PEM file (kid=FILE)': () => signJwt(claims('u_ec_pem'), ecPem.privateKey, { alg: 'ES256', kid: 'ec-main' }),
    'RS256, JWKS file': () => signJwt(claims('u_rsa_jwks'), rsaJwk.privateKey, { alg: 'RS256', kid: 'idp-rsa' }),
    'ES256, JWKS file': () => signJwt(claims('u_ec_jwks'), ecJwk.privateKey, { alg: 'ES256', kid: 'idp-ec' }),
  };
  let node;
  before(async () => {
    node = await startNode(['--jwt-public-key', rsaPath, '--jwt-public-key', `ec-main=${ecPath}`, '--jwt-jwks', jwksPath]);
  });
  after(async () => {
    await node?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, make] of Object.entries(good)) {
    it(`${name}: welcome`, T, async (t) => {
      const token = make();
      const c = await node.connect({ t, token });
      assert.equal(c.welcome.user, JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).sub);
      await c.assertAlive('events.org_K.keys.x');
    });
  }

  it('an RS256 token publishes over HTTP, twice (the bearer cache)', T, async (t) => {
    const sub = await node.connect({ t, token: good['ES256, JWKS file']() });
    await sub.subscribe('events.org_K.pub.>');
    const token = signJwt({ ...claims('svc_k'), pub_allow: ['events.org_K.pub.>'] }, rsaJwk.privateKey, { alg: 'RS256', kid: 'idp-rsa' });
    const first = await node.publishOk(token, 'events.org_K.pub.a', { n: 1 });
    const second = await node.publishOk(token, 'events.org_K.pub.a', { n: 2 });
    await sub.waitEvent((e) => e.id === first);
    await sub.waitEvent((e) => e.id === second);
  });

  it('the HS256 secret still works next to the keys', T, async (t) => {
    const c = await node.connect({ t, token: node.token({ sub: 'u_hs', org: 'org_K' }) });
    assert.equal(c.welcome.user, 'u_hs');
  });

  const bad = {
    'HS256 keyed with the RSA public key PEM, kid of that key': () =>
      signJwt(claims('u_forged'), pubPem(rsaPem), { alg: 'HS256', kid: 'rsa-main' }),
    'HS256 keyed with the RSA public key PEM, no kid': () => signJwt(claims('u_forged'), pubPem(rsaPem), { alg: 'HS256' }),
    'HS256 keyed with the JWKS key as PEM': () => signJwt(claims('u_forged'), pubPem(rsaJwk), { alg: 'HS256', kid: 'idp-rsa' }),
    'RS256 signed by a key the node does not know, known kid': () =>
      signJwt(claims('u_other'), crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, { alg: 'RS256', kid: 'rsa-main' }),
    'ES256 under the kid of an RSA key': () => signJwt(claims('u_mix'), ecPem.privateKey, { alg: 'ES256', kid: 'rsa-main' }),
    'RS256 without a kid': () => signJwt(claims('u_nokid'), rsaPem.privateKey, { alg: 'RS256' }),
    'unknown kid': () => signJwt(claims('u_unknown'), rsaPem.privateKey, { alg: 'RS256', kid: 'nope' }),
    'alg none with a known kid': () => signJwt(claims('u_none'), null, { alg: 'none', header: { alg: 'none', kid: 'rsa-main' } }),
    'RS256 with nbf an hour ahead': () => signJwt({ ...claims('u_early'), nbf: nowSec() + 3600 }, rsaPem.privateKey, { alg: 'RS256', kid: 'rsa-main' }),
  };
  for (const [name, make] of Object.entries(bad)) {
    it(`${name}: refused with 4401`, T, async (t) => {
      const { close, error } = await refused(node, t, make());
      assert.equal(close.code, 4401, `close ${JSON.stringify(close)}`);
      assert.equal(error?.code, 'unauthorized', JSON.stringify(error));
      if (name === 'unknown kid') assert.equal(error.message, 'unknown key id');
    });
  }

  it('a forged HS256 token is refused over HTTP too', T, async () => {
    const forged = signJwt({ ...claims('svc_forged'), pub_allow: ['events.org_K.>'] }, pubPem(rsaPem), { alg: 'HS256', kid: 'rsa-main' });
    const r = await node.publish(forged, { topic: 'events.org_K.x', data: {} });
    assert.equal(r.status, 401, `${r.status} ${r.text}`);
  });

  it('with only a JWKS, the node starts without a secret and refuses HS256 tokens', T, async (t) => {
    const keysOnly = await startNode(['--jwt-jwks', jwksPath, '--jwt-leeway', '2m'], { secret: null });
    t.after(() => keysOnly.stop());
    const c = await keysOnly.connect({ t, token: good['RS256, JWKS file']() });
    assert.equal(c.welcome.user, 'u_rsa_jwks');
    // --jwt-leeway 2m: an nbf one minute ahead is fine here.
    const soon = signJwt({ ...claims('u_soon'), nbf: nowSec() + 60 }, ecJwk.privateKey, { alg: 'ES256', kid: 'idp-ec' });
    assert.equal((await keysOnly.connect({ t, token: soon })).welcome.user, 'u_soon');
    const hs = await refused(keysOnly, t, signJwt(claims('u_hs'), 'any-secret'));
    assert.equal(hs.close.code, 4401);
    assert.equal(hs.error?.message, 'HS256 tokens are not accepted by this node');
  });

  it('unusable key files end the start with exit status 2 and a message', T, () => {
    const privatePem = file('private.pem', rsaPem.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const garbage = file('garbage.pem', 'hello\n');
    const smallRsa = file('small.pem', pubPem(crypto.generateKeyPairSync('rsa', { modulusLength: 1024 })));
    const badJwks = file('bad.jwks.json', '{"keys":[{"kty":"RSA","kid":"k"}]}');
    const notJson = file('notjson.jwks.json', '{"keys":');
    const cases = [
      [['--jwt-public-key', garbage], /garbage\.pem.*not a PEM public key/],
      [['--jwt-public-key', privatePem], /private\.pem.*not a PEM public key/],
      [['--jwt-public-key', smallRsa], /at least 2048 bits/],
      [['--jwt-public-key', path.join(dir, 'missing.pem')], /cannot read .*missing\.pem/],
      [['--jwt-public-key', rsaPath, '--jwt-public-key', `rsa-main=${ecPath}`], /duplicate key id rsa-main/],
      [['--jwt-jwks', badJwks], /bad\.jwks\.json.*JWKS key k/],
      [['--jwt-jwks', notJson], /not a JWKS document/],
      [['--jwt-leeway', 'soon'], /--jwt-leeway needs a duration/],
    ];
    for (const [flags, message] of cases) {
      const r = run(['--host', '127.0.0.1', '--port', '0', '--jwt-secret', 's', ...flags]);
      assert.equal(r.status, 2, `${flags.join(' ')}: status ${r.status}, stderr ${r.stderr}, stdout ${r.stdout}`);
      assert.match(r.stderr, message, `${flags.join(' ')}: stderr`);
      assert.doesNotMatch(r.stdout, /listening on/);
    }
  });
});
