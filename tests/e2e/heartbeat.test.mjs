// Keep-alive: server pings, 4408 for clients that do not pong, cleanup of their subscriptions.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, waitUntil } from './lib/node.mjs';

const INTERVAL_MS = 100;
const TIMEOUT_MS = 200;
const T = { timeout: 30000 };

describe('heartbeat', () => {
  let node, userToken, adminToken, pubToken;
  before(async () => {
    node = await startNode(['--heartbeat-interval', `${INTERVAL_MS}ms`, '--heartbeat-timeout', `${TIMEOUT_MS}ms`]);
    userToken = node.token({ sub: 'u_1', org: 'org_123' });
    adminToken = node.token({ sub: 'u_admin', org: 'org_123', admin: true });
    pubToken = node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] });
  });
  after(async () => {
    await node?.stop();
  });

  it('welcome.heartbeat_ms announces the configured interval', T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    assert.equal(c.welcome.heartbeat_ms, INTERVAL_MS, `welcome: ${JSON.stringify(c.welcome)}`);
  });

  it('a client that answers pings survives many intervals', T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    await c.subscribe('events.org_123.hb.alive');
    // 8 pings take at least 7 intervals (700 ms), i.e. far more than the 200 ms pong timeout
    await c.waitState((cl) => cl.pings >= 8 || cl.closeInfo, { timeout: 8000, what: '8 server pings' });
    assert.equal(c.closeInfo, null, `answering client was closed: ${JSON.stringify(c.closeInfo)}`);
    const id = await node.publishOk(pubToken, 'events.org_123.hb.alive', { ok: 1 });
    await c.waitEvent((e) => e.id === id);
    await c.assertAlive('events.org_123.hb.alive2');
  });

  it('a client that stops answering pings is closed with 4408 and its subscriptions disappear', T, async (t) => {
    const bystander = await node.connect({ t, token: userToken });
    await bystander.subscribe('events.org_123.hb.bystander');

    const c = await node.connect({ t, token: userToken, autoPong: false });
    let answering = true; // answer pings by hand until the setup is verified
    c.ws.on('ping', (d) => {
      if (answering) c.ws.pong(d);
    });
    const P = 'events.org_123.hb.dead.*';
    await c.subscribe(P);
    await waitUntil(async () => (await node.subscribers(adminToken, P)) === 1, { message: `${P} in /v1/introspect/topics` });
    assert.ok((await node.sessions(adminToken)).some((s) => s.session === c.welcome.session), 'session listed before the timeout');
    const metricsBefore = await node.metrics();
    const closes4408Before = metricsBefore.get('switchyard_closes_total', { code: '4408' }) ?? 0;

    answering = false;
    const close = await c.waitClose(5000);
    assert.equal(close.code, 4408, `close code (reason ${JSON.stringify(close.reason)})`);

    await waitUntil(async () => !(await node.topics(adminToken)).some((x) => x.pattern === P), { message: `${P} to vanish from /v1/introspect/topics` });
    await waitUntil(async () => !(await node.sessions(adminToken)).some((s) => s.session === c.welcome.session), { message: 'the session to vanish from /v1/introspect/sessions' });
    await waitUntil(async () => ((await node.metrics()).get('switchyard_closes_total', { code: '4408' }) ?? 0) >= closes4408Before + 1, {
      message: 'switchyard_closes_total{code="4408"} to increase',
    });

    assert.equal(bystander.closeInfo, null, 'the answering bystander must stay connected');
    const id = await node.publishOk(pubToken, 'events.org_123.hb.bystander', {});
    await bystander.waitEvent((e) => e.id === id);
  });
});
