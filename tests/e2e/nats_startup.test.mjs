// NATS bridge: the node starts while NATS is down, serves clients, and bridges once NATS comes up.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitUntil } from './lib/node.mjs';
import { NatsServer, natsClient, publishEnvelope, envelope, startBridgedNode, metric, waitBus, healthz } from './lib/nats.mjs';

const T = { timeout: 120000 };

describe('nats down at start', () => {
  it('node starts without NATS, serves WebSocket clients, and delivers once nats-server comes up', T, async (t) => {
    const ns = await NatsServer.allocate(); // ports only; nothing listens yet
    t.after(() => ns.stop());
    const node = await startBridgedNode(t, ns); // startNode waits for "listening on ..."
    const pubToken = node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] });

    let h = await healthz(node);
    assert.equal(h.json.bus, 'down', `/healthz with NATS down: ${h.text}`);
    assert.equal(h.json.status, 'degraded', `/healthz with NATS down: ${h.text}`);
    const m = await node.metrics();
    assert.equal(m.get('switchyard_bus_up'), 0, `switchyard_bus_up with NATS down:\n${m.text}`);
    const r = await node.publish(pubToken, { topic: 'events.org_123.st.x', data: {} });
    assert.equal(r.status, 503, `POST /v1/publish with NATS down: ${r.status} ${r.text}`);
    assert.equal(r.json?.code, 'unavailable', `503 body: ${r.text}`);

    // WebSocket side works: auth, subscribe ok
    const P = 'events.org_123.st.*';
    const P2 = 'events.org_123.st2.>';
    const c = await node.connect({ t, token: node.token({ sub: 'u_1', org: 'org_123' }) });
    await c.subscribe(P);
    await c.subscribe(P2);
    const c2 = await node.connect({ t, token: node.token({ sub: 'u_2', org: 'org_123' }) });
    await c2.subscribe(P);
    h = await healthz(node);
    assert.equal(h.json.bus, 'down', `still down: ${h.text}`);

    // NATS comes up on the configured port
    await ns.start();
    h = await waitBus(node, 'up', { timeout: 30000 });
    assert.equal(h.json.status, 'ok', `/healthz once NATS is up: ${h.text}`);
    await waitUntil(async () => (await metric(node, 'switchyard_bus_up')) === 1, { message: 'switchyard_bus_up 1' });

    // interest made while down is now on NATS
    let last;
    await waitUntil(
      async () => {
        last = await ns.nodeSubjects();
        return JSON.stringify(last) === JSON.stringify([P, P2].sort());
      },
      { timeout: 15000, interval: 100, message: 'the subscriptions made while NATS was down to appear on nats-server' },
    ).catch((e) => {
      e.message += `; node NATS subscriptions: ${JSON.stringify(last)}`;
      throw e;
    });

    const nc = await natsClient(t, ns, 'publisher');
    await publishEnvelope(nc, 'events.org_123.st.go', envelope('events.org_123.st.go', { up: true }, { id: 'st-1' }));
    const ev = await c.waitEvent((e) => e.id === 'st-1', { what: 'the event published on NATS after it came up' });
    assert.deepEqual({ subscription: ev.subscription, topic: ev.topic, data: ev.data }, { subscription: P, topic: 'events.org_123.st.go', data: { up: true } });
    await c2.waitEvent((e) => e.id === 'st-1', { what: 'the event on the second client' });

    // HTTP publish works now too
    const id = await node.publishOk(pubToken, 'events.org_123.st2.a.b', { http: true });
    const ev2 = await c.waitEvent((e) => e.id === id, { what: 'the HTTP-published event' });
    assert.equal(ev2.subscription, P2);

    // a subscription made after NATS came up works as well
    const P3 = 'events.org_123.st3.*';
    await c2.subscribe(P3);
    await publishEnvelope(nc, 'events.org_123.st3.z', envelope('events.org_123.st3.z', 1, { id: 'st-3' }));
    await c2.waitEvent((e) => e.id === 'st-3' && e.subscription === P3);
    assert.equal(c.closeInfo, null);
    assert.equal(c2.closeInfo, null);
  });
});
