// NATS bridge: events published on NATS by another client reach WebSocket subscribers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startNats, natsClient, publishEnvelope, envelope, startBridgedNode, metric } from './lib/nats.mjs';

const T = { timeout: 60000 };

describe('nats delivery', () => {
  it('msgpack and JSON envelopes published on NATS reach a wildcard subscriber; non-matching subjects do not', T, async (t) => {
    const ns = await startNats(t);
    const node = await startBridgedNode(t, ns);
    const c = await node.connect({ t, token: node.token({ sub: 'u_1', org: 'org_123' }) });
    const P = 'events.org_123.d1.*.created';
    await c.subscribe(P);
    const nc = await natsClient(t, ns, 'publisher');
    const receivedBefore = await metric(node, 'switchyard_bus_received_total');

    // published after the subscribe `ok`: must be delivered (the NATS SUB was flushed before ok)
    const data = {
      s: 'héllo ✓',
      n: 42,
      neg: -7,
      f: 1.5,
      t: true,
      fl: false,
      nil: null,
      arr: [1, 'two', 3.25, null, { k: 'v' }, [true]],
      nested: { a: { b: { c: [1, 2, { d: 'deep' }] } }, empty: {}, emptyArr: [] },
    };
    const ts = Date.now() - 12345;
    const topic1 = 'events.org_123.d1.users.created';
    await publishEnvelope(nc, topic1, envelope(topic1, data, { id: 'mp-evt-1', ts, headers: { trace: 'abc' } }));
    const ev1 = await c.waitEvent((e) => e.id === 'mp-evt-1', { what: 'the msgpack event' });
    assert.deepEqual(
      { type: ev1.type, subscription: ev1.subscription, topic: ev1.topic, id: ev1.id, ts: ev1.ts },
      { type: 'event', subscription: P, topic: topic1, id: 'mp-evt-1', ts },
      `frame: ${JSON.stringify(ev1)}`,
    );
    assert.deepEqual(ev1.data, data, 'msgpack data must round-trip to the same JSON value');

    // scalar data values round-trip too
    for (const [i, d] of [['str', 'just a string'], ['int', 7], ['float', -0.125], ['null', null], ['array', [1, [2, [3]]]]].entries()) {
      const id = `mp-scalar-${i}`;
      await publishEnvelope(nc, topic1, envelope(topic1, d[1], { id }));
      const ev = await c.waitEvent((e) => e.id === id, { what: `the ${d[0]} event` });
      assert.deepEqual(ev.data, d[1], `${d[0]} data: frame ${JSON.stringify(ev)}`);
    }

    // no id / no topic / no ts in the envelope: the node assigns an id, topic comes from the subject
    const topic2 = 'events.org_123.d1.groups.created';
    const before = Date.now();
    await publishEnvelope(nc, topic2, { source: 'e2e', data: { minimal: true } });
    const ev2 = await c.waitEvent((e) => e.topic === topic2, { what: 'the minimal msgpack event' });
    assert.equal(ev2.subscription, P);
    assert.equal(typeof ev2.id, 'string', `node must assign an id: ${JSON.stringify(ev2)}`);
    assert.ok(ev2.id.length > 0, 'assigned id must be non-empty');
    assert.equal(typeof ev2.ts, 'number', `frame must carry ts: ${JSON.stringify(ev2)}`);
    assert.ok(ev2.ts >= before - 5000 && ev2.ts <= Date.now() + 5000, `assigned ts ${ev2.ts} should be about now`);
    assert.deepEqual(ev2.data, { minimal: true });

    // non-matching subjects (never delivered), then a JSON envelope acting as the barrier
    const miss = [
      'events.org_123.d1.users.deleted',
      'events.org_123.d1.users.x.created',
      'events.org_123.d1.created',
      'events.org_123.d2.users.created',
    ];
    for (const m of miss) await publishEnvelope(nc, m, envelope(m, { miss: m }, { id: `miss-${m}` }));

    const topic3 = 'events.org_123.d1.orders.created';
    const jdata = { j: [1, 2.5, 'x', null, { y: false }], s: 'json' };
    await publishEnvelope(nc, topic3, envelope(topic3, jdata, { id: 'json-evt-1', ts }), { json: true });
    const ev3 = await c.waitEvent((e) => e.id === 'json-evt-1', { what: 'the JSON-envelope event' });
    assert.deepEqual(
      { subscription: ev3.subscription, topic: ev3.topic, id: ev3.id, ts: ev3.ts, data: ev3.data },
      { subscription: P, topic: topic3, id: 'json-evt-1', ts, data: jdata },
      `JSON frame: ${JSON.stringify(ev3)}`,
    );

    const wrong = c.events((e) => miss.includes(e.topic) || String(e.id).startsWith('miss-'));
    assert.deepEqual(wrong.map((e) => e.topic), [], 'events delivered for subjects the pattern does not match');
    // each delivered event exactly once
    const ids = c.events().map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, `duplicate frames: ${JSON.stringify(ids)}`);
    assert.equal(ids.length, 8, `expected 8 event frames, got ${JSON.stringify(ids)}`);

    const receivedAfter = await metric(node, 'switchyard_bus_received_total');
    assert.ok(receivedAfter >= receivedBefore + 8, `switchyard_bus_received_total should count NATS messages: ${receivedBefore} -> ${receivedAfter}`);
  });

  it('overlapping patterns: one frame per subscription, never two for the same subscription; publisher id preserved', T, async (t) => {
    const ns = await startNats(t);
    const node = await startBridgedNode(t, ns);
    const star = 'events.org_123.ov.*.c';
    const gt = 'events.org_123.ov.>';
    const both = await node.connect({ t, token: node.token({ sub: 'u_1', org: 'org_123' }) });
    await both.subscribe(star);
    await both.subscribe(gt);
    const only = await node.connect({ t, token: node.token({ sub: 'u_2', org: 'org_123' }) });
    await only.subscribe(gt);
    const nc = await natsClient(t, ns, 'publisher');

    const topic = 'events.org_123.ov.b.c';
    await publishEnvelope(nc, topic, envelope(topic, { v: 1 }, { id: 'publisher-chosen-id-1' }));
    await both.waitState((cl) => cl.events((e) => e.id === 'publisher-chosen-id-1').length >= 2, {
      what: 'two frames (one per subscription) for one NATS message',
    });
    await only.waitEvent((e) => e.id === 'publisher-chosen-id-1', { what: 'the event on the single-pattern client' });

    // deeper topic: only '>' matches
    const deep = 'events.org_123.ov.b.c.d';
    await publishEnvelope(nc, deep, envelope(deep, { v: 2 }, { id: 'publisher-chosen-id-2' }));
    await both.waitEvent((e) => e.id === 'publisher-chosen-id-2', { what: 'the deep event' });
    // barrier on both subscriptions: a later event that matches both patterns
    const barrier = 'events.org_123.ov.z.c';
    await publishEnvelope(nc, barrier, envelope(barrier, { v: 3 }, { id: 'barrier-3' }));
    await both.waitState((cl) => cl.events((e) => e.id === 'barrier-3').length >= 2, { what: 'both frames of the barrier' });
    await only.waitEvent((e) => e.id === 'barrier-3', { what: 'the barrier on the single-pattern client' });

    const first = both.events((e) => e.id === 'publisher-chosen-id-1');
    assert.deepEqual(first.map((e) => e.subscription).sort(), [gt, star].sort(), `frames for ${topic}: ${JSON.stringify(first)}`);
    for (const e of first) {
      assert.equal(e.topic, topic);
      assert.deepEqual(e.data, { v: 1 });
    }
    const second = both.events((e) => e.id === 'publisher-chosen-id-2');
    assert.deepEqual(second.map((e) => e.subscription), [gt], `frames for ${deep}: ${JSON.stringify(second)}`);
    const third = both.events((e) => e.id === 'barrier-3');
    assert.deepEqual(third.map((e) => e.subscription).sort(), [gt, star].sort(), `frames for ${barrier}: ${JSON.stringify(third)}`);

    const onlyIds = only.events().map((e) => `${e.id}@${e.subscription}`);
    assert.deepEqual(
      onlyIds,
      [`publisher-chosen-id-1@${gt}`, `publisher-chosen-id-2@${gt}`, `barrier-3@${gt}`],
      'single-pattern client: each event exactly once, in order',
    );
  });
});
