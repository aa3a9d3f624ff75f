// Browser safety: --allowed-origins gates WebSocket upgrades that carry an
// Origin header and drives CORS on /v1/*; clients without Origin pass.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openWs, startNode, waitUntil } from './lib/node.mjs';

const APP = 'https://app.example.com';
const OTHER = 'https://evil.example.net';
const T = { timeout: 20000 };

/** Opens a WebSocket with `origin`; resolves with the client or the refusal. */
async function upgrade(node, origin, token) {
  const headers = origin ? { Origin: origin } : {};
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const c = await openWs(node.wsUrl, { headers });
    node.clients.add(c);
    return { client: c };
  } catch (err) {
    return { status: err.status, body: err.body, err };
  }
}

const preflight = (node, path, origin, method = 'POST') =>
  node.http('OPTIONS', path, {
    headers: { Origin: origin, 'Access-Control-Request-Method': method, 'Access-Control-Request-Headers': 'authorization, content-type' },
  });

describe('allowed origins', () => {
  let node, token, pubToken;
  before(async () => {
    node = await startNode(['--allowed-origins', `${APP}, http://localhost:3000`]);
    token = node.token({ sub: 'u_1', org: 'org_123' });
    pubToken = node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] });
  });
  after(async () => {
    await node?.stop();
  });

  it('an upgrade from a listed origin is served', T, async () => {
    for (const origin of [APP, 'http://localhost:3000', 'HTTPS://App.Example.com']) {
      const r = await upgrade(node, origin, token);
      assert.ok(r.client, `${origin}: upgrade refused: ${r.err?.message}`);
      const welcome = await r.client.waitFor((f) => f.type === 'welcome');
      assert.equal(welcome.user, 'u_1');
      r.client.terminate();
    }
  });

  it('an upgrade without Origin (not a browser) is served', T, async () => {
    const r = await upgrade(node, undefined, token);
    assert.ok(r.client, `upgrade refused: ${r.err?.message}`);
    await r.client.waitFor((f) => f.type === 'welcome');
  });

  it('an upgrade from another origin gets 403 and is counted', T, async () => {
    const m0 = await node.metrics();
    const before = m0.get('switchyard_origin_rejected_total');
    for (const origin of [OTHER, `${APP}.evil.example.net`, 'http://app.example.com', 'null']) {
      const r = await upgrade(node, origin, token);
      assert.equal(r.status, 403, `${origin}: ${r.err?.message}`);
      assert.deepEqual(JSON.parse(r.body), { code: 'forbidden', message: 'origin not allowed' });
    }
    const m = await node.metrics();
    assert.equal(m.get('switchyard_origin_rejected_total'), before + 4);
    assert.equal(m.get('switchyard_connections'), m0.get('switchyard_connections'), 'no refused upgrade became a connection');
  });

  it('a preflight from a listed origin is answered 204 with the CORS headers', T, async () => {
    for (const path of ['/v1/publish', '/v1/introspect/sessions']) {
      const r = await preflight(node, path, APP);
      assert.equal(r.status, 204, `${path}: ${r.text}`);
      assert.equal(r.headers.get('access-control-allow-origin'), APP);
      assert.match(r.headers.get('access-control-allow-methods'), /\bPOST\b/);
      assert.match(r.headers.get('access-control-allow-methods'), /\bGET\b/);
      assert.equal(r.headers.get('access-control-allow-headers'), 'Authorization, Content-Type');
      assert.ok(Number(r.headers.get('access-control-max-age')) > 0, 'Access-Control-Max-Age');
      assert.equal(r.headers.get('vary'), 'Origin');
      assert.equal(r.text, '');
    }
  });

  it('responses to a listed origin carry Access-Control-Allow-Origin and Vary', T, async () => {
    const ok = await node.publish(pubToken, { topic: 'events.org_123.cors', data: 1 }, { headers: { Origin: APP } });
    assert.equal(ok.status, 202, ok.text);
    assert.equal(ok.headers.get('access-control-allow-origin'), APP);
    assert.equal(ok.headers.get('vary'), 'Origin');
    // Errors too, so the page can read why.
    const denied = await node.publish('not-a-token', { topic: 'events.org_123.cors' }, { headers: { Origin: APP } });
    assert.equal(denied.status, 401, denied.text);
    assert.equal(denied.headers.get('access-control-allow-origin'), APP);
  });

  it('another origin gets no CORS headers, and its preflight 403', T, async () => {
    const before = (await node.metrics()).get('switchyard_origin_rejected_total');
    const r = await node.publish(pubToken, { topic: 'events.org_123.cors', data: 1 }, { headers: { Origin: OTHER } });
    assert.equal(r.headers.get('access-control-allow-origin'), null, 'no Access-Control-Allow-Origin');
    const pre = await preflight(node, '/v1/publish', OTHER);
    assert.equal(pre.status, 403, pre.text);
    assert.deepEqual(pre.json, { code: 'forbidden', message: 'origin not allowed' });
    for (const h of ['access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers'])
      assert.equal(pre.headers.get(h), null, h);
    assert.equal((await node.metrics()).get('switchyard_origin_rejected_total'), before + 1);
  });

  it('requests without Origin carry no CORS headers', T, async () => {
    const r = await node.publish(pubToken, { topic: 'events.org_123.cors', data: 1 });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.headers.get('access-control-allow-origin'), null);
  });
});

describe('default origin policy', () => {
  let node;
  after(async () => {
    await node?.stop();
  });

  it('without --allowed-origins, browsers are refused and other clients served', T, async () => {
    node = await startNode([]);
    await waitUntil(() => /no browser origin allowed/.test(node.stderr), { message: 'the start warning' });
    const token = node.token({ sub: 'u_1', org: 'org_123' });
    const refused = await upgrade(node, APP, token);
    assert.equal(refused.status, 403, refused.err?.message);
    assert.equal((await preflight(node, '/v1/publish', APP)).status, 403);
    const plain = await upgrade(node, undefined, token);
    assert.ok(plain.client, `upgrade without Origin refused: ${plain.err?.message}`);
    await node.stop();
  });

  it('--dev without --allowed-origins allows any origin', T, async () => {
    node = await startNode(['--dev']);
    const token = node.token({ sub: 'u_1', org: 'org_123' });
    const r = await upgrade(node, OTHER, token);
    assert.ok(r.client, `upgrade refused: ${r.err?.message}`);
    const pre = await preflight(node, '/v1/publish', OTHER);
    assert.equal(pre.status, 204, pre.text);
    assert.equal(pre.headers.get('access-control-allow-origin'), OTHER);
    await node.stop();
  });

  it('--allowed-origins * allows any origin', T, async () => {
    node = await startNode(['--allowed-origins', '*']);
    const token = node.token({ sub: 'u_1', org: 'org_123' });
    const r = await upgrade(node, OTHER, token);
    assert.ok(r.client, `upgrade refused: ${r.err?.message}`);
    const res = await node.http('GET', '/v1/introspect/topics', { headers: { Origin: OTHER } });
    assert.equal(res.headers.get('access-control-allow-origin'), OTHER);
  });
});
