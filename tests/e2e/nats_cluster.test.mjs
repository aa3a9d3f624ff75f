// NATS bridge: two nodes on one NATS; POST /v1/publish on one node is delivered by both.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitUntil } from './lib/node.mjs';
import { startNats, natsClient, startBridgedNode, mpDecode, metric } from './lib/nats.mjs';

const T = { timeout: 60000 };

describe('nats two nodes', () => {
  it('an event published through one node is delivered by both nodes with the 202 id', T, async (t) => {
    const ns = await startNats(t);
    const a = await startBridgedNode(t, ns);
    const b = await startBridgedNode(t, ns);
    assert.notEqual(a.port, b.port);
    const P = 'events.org_123.cl.>';
    const ca = await a.connect({ t, token: a.token({ sub: 'u_1', org: 'org_123' }) });
    const cb = await b.connect({ t, token: b.token({ sub: 'u_2', org: 'org_123' }) });
    await ca.subscribe(P);
    await cb.subscribe(P);

    // observe what goes over NATS
    const nc = await natsClient(t, ns, 'observer');
    const seen = [];
    const sub = nc.subscribe('events.org_123.cl.>');
    (async () => {
      for await (const m of sub) seen.push({ subject: m.subject, data: m.data, headers: m.headers });
    })();
    await nc.flush();

    const pubA = a.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] });
    const pubB = b.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] });
    const publishedBefore = await metric(a, 'switchyard_bus_published_total');

    const topic = 'events.org_123.cl.task.done';
    const data = { n: 1, list: [1, 2, { x: 'y' }], f: 0.5, z: null };
    const id = await a.publishOk(pubA, topic, data);
    const ea = await ca.waitEvent((e) => e.id === id, { what: 'the event on node A (publishing node)' });
    const eb = await cb.waitEvent((e) => e.id === id, { what: 'the event on node B' });
    for (const [name, e] of [['A', ea], ['B', eb]]) {
      assert.deepEqual(
        { subscription: e.subscription, topic: e.topic, id: e.id, data: e.data },
        { subscription: P, topic, id, data },
        `node ${name} frame: ${JSON.stringify(e)}`,
      );
      assert.equal(typeof e.ts, 'number');
    }
    assert.equal(ea.ts, eb.ts, 'both nodes deliver the same ts');

    // publisher-chosen id, published through node B
    const id2 = await b.publishOk(pubB, topic, { second: true }, { id: 'chosen-by-publisher' });
    assert.equal(id2, 'chosen-by-publisher');
    await ca.waitEvent((e) => e.id === id2, { what: 'the second event on node A' });
    await cb.waitEvent((e) => e.id === id2, { what: 'the second event on node B (publishing node)' });

    // the publishing node delivers only via NATS: exactly one frame per client per event
    for (const [name, c] of [['A', ca], ['B', cb]]) {
      assert.deepEqual(
        c.events().map((e) => e.id),
        [id, id2],
        `node ${name} frames: ${c._dump()}`,
      );
    }

    // the envelope on NATS: subject = topic, msgpack map with id/topic/ts/source/data
    await waitUntil(() => seen.filter((m) => m.subject === topic).length >= 2, { message: 'both envelopes on the NATS observer' });
    const onWire = seen.filter((m) => m.subject === topic);
    assert.equal(onWire.length, 2, `expected 2 messages on NATS subject ${topic}, saw ${onWire.length}`);
    const env = mpDecode(onWire[0].data);
    assert.ok(env && typeof env === 'object' && !Array.isArray(env), `NATS payload must be a msgpack map, got ${JSON.stringify(env)}`);
    assert.equal(env.id, id);
    if (env.topic !== undefined) assert.equal(env.topic, topic);
    assert.equal(typeof env.source, 'string', `envelope source: ${JSON.stringify(env)}`);
    assert.deepEqual(env.data, data);
    assert.equal(Number(env.ts), ea.ts, 'envelope ts equals delivered ts');

    const publishedAfter = await waitUntil(async () => {
      const v = await metric(a, 'switchyard_bus_published_total');
      return v >= publishedBefore + 1 ? v : false;
    }, { message: `switchyard_bus_published_total on node A to reach ${publishedBefore + 1}` });
    assert.equal(publishedAfter, publishedBefore + 1, `switchyard_bus_published_total on node A: ${publishedBefore} -> ${publishedAfter}`);
  });
});
