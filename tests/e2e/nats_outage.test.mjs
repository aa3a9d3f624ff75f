// NATS bridge: nats-server lost while the node runs, then restarted on the same port.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitUntil } from './lib/node.mjs';
import { startNats, natsClient, publishEnvelope, envelope, startBridgedNode, metric, waitBus, healthz } from './lib/nats.mjs';

const T = { timeout: 120000 };

describe('nats outage', () => {
  it('nats-server SIGKILLed and restarted: clients stay, healthz/publish report the outage, delivery resumes', T, async (t) => {
    const ns = await startNats(t);
    const node = await startBridgedNode(t, ns); // --nats-reconnect-wait 100ms --nats-reconnect-wait-max 500ms
    const pubToken = node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] });
    const P1 = 'events.org_123.out.*';
    const P2 = 'events.org_123.out2.>';
    const a = await node.connect({ t, token: node.token({ sub: 'u_a', org: 'org_123' }) });
    const b = await node.connect({ t, token: node.token({ sub: 'u_b', org: 'org_123' }) });
    await a.subscribe(P1);
    await b.subscribe(P1);
    await b.subscribe(P2);

    let h = await waitBus(node, 'up');
    assert.equal(h.json.status, 'ok', `healthy node: ${h.text}`);
    assert.equal(await metric(node, 'switchyard_bus_up'), 1, 'switchyard_bus_up before the outage');
    const reconnectsBefore = await metric(node, 'switchyard_bus_reconnects_total');

    // delivery works before the outage
    let nc = await natsClient(t, ns, 'pub1');
    await publishEnvelope(nc, 'events.org_123.out.pre', envelope('events.org_123.out.pre', { pre: true }, { id: 'pre-1' }));
    await a.waitEvent((e) => e.id === 'pre-1');
    await b.waitEvent((e) => e.id === 'pre-1');
    const idPre = await node.publishOk(pubToken, 'events.org_123.out2.pre', { pre: 2 });
    await b.waitEvent((e) => e.id === idPre);
    await nc.close();

    // outage
    await ns.kill('SIGKILL');
    h = await waitBus(node, 'down');
    assert.equal(h.json.status, 'degraded', `/healthz status during the outage: ${h.text}`);
    await waitUntil(async () => (await metric(node, 'switchyard_bus_up')) === 0, { message: 'switchyard_bus_up 0 during the outage' });
    const r = await node.publish(pubToken, { topic: 'events.org_123.out.during', data: { during: true } });
    assert.equal(r.status, 503, `POST /v1/publish during the outage: ${r.status} ${r.text}`);
    assert.equal(r.json?.code, 'unavailable', `503 body: ${r.text}`);
    assert.equal(node.exitInfo, null, 'node must keep running');
    assert.equal(a.closeInfo, null, `client A must stay connected, closed: ${JSON.stringify(a.closeInfo)}`);
    assert.equal(b.closeInfo, null, `client B must stay connected, closed: ${JSON.stringify(b.closeInfo)}`);
    // the WebSocket side still answers while NATS is down
    const hc = await healthz(node);
    assert.equal(typeof hc.json.connections, 'number');

    // restart on the same port
    await ns.start();
    h = await waitBus(node, 'up', { timeout: 30000 });
    assert.equal(h.json.status, 'ok', `/healthz after the restart: ${h.text}`);
    await waitUntil(async () => (await metric(node, 'switchyard_bus_up')) === 1, { message: 'switchyard_bus_up 1 after the restart' });

    // every interest subscription is back on the new server
    let last;
    await waitUntil(
      async () => {
        last = await ns.nodeSubjects();
        return JSON.stringify(last) === JSON.stringify([P1, P2].sort());
      },
      { timeout: 15000, interval: 100, message: 'the node to re-subscribe its interest after the restart' },
    ).catch((e) => {
      e.message += `; node NATS subscriptions: ${JSON.stringify(last)}`;
      throw e;
    });

    nc = await natsClient(t, ns, 'pub2');
    await publishEnvelope(nc, 'events.org_123.out.post', envelope('events.org_123.out.post', { post: true }, { id: 'post-1' }));
    const ea = await a.waitEvent((e) => e.id === 'post-1', { what: 'A: event after the restart' });
    const eb = await b.waitEvent((e) => e.id === 'post-1', { what: 'B: event after the restart' });
    assert.deepEqual([ea.subscription, eb.subscription], [P1, P1]);
    assert.deepEqual(ea.data, { post: true });

    const idPost = await node.publishOk(pubToken, 'events.org_123.out2.post', { post: 2 });
    const e2 = await b.waitEvent((e) => e.id === idPost, { what: 'B: HTTP-published event after the restart' });
    assert.equal(e2.subscription, P2);

    // the failed publish was not delivered later
    assert.deepEqual(a.events((e) => e.topic === 'events.org_123.out.during').concat(b.events((e) => e.topic === 'events.org_123.out.during')), [], 'a 503 publish must not be delivered');
    assert.equal(node.exitInfo, null, 'node must not restart');
    assert.equal(a.closeInfo, null, 'client A still connected');
    assert.equal(b.closeInfo, null, 'client B still connected');
    const reconnectsAfter = await metric(node, 'switchyard_bus_reconnects_total');
    assert.ok(reconnectsAfter >= reconnectsBefore + 1, `switchyard_bus_reconnects_total ${reconnectsBefore} -> ${reconnectsAfter}`);
  });
});
