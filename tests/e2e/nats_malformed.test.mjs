// NATS bridge: malformed envelopes are dropped and counted; the next good one is delivered.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { waitUntil } from './lib/node.mjs';
import { startNats, natsClient, publishEnvelope, envelope, startBridgedNode, metric, mpEncode, healthz } from './lib/nats.mjs';

const T = { timeout: 60000 };

describe('nats malformed envelopes', () => {
  it('malformed envelopes are dropped and counted exactly; good ones around them are delivered', T, async (t) => {
    const ns = await startNats(t);
    const node = await startBridgedNode(t, ns);
    const P = 'events.org_123.mf.*';
    const OTHER = 'events.org_123.mfo.>';
    const c = await node.connect({ t, token: node.token({ sub: 'u_1', org: 'org_123' }) });
    await c.subscribe(P);
    const other = await node.connect({ t, token: node.token({ sub: 'u_2', org: 'org_123' }) });
    await other.subscribe(OTHER);
    const nc = await natsClient(t, ns, 'publisher');
    const topic = 'events.org_123.mf.t';
    const otherTopic = 'events.org_123.mfo.t';

    await publishEnvelope(nc, topic, envelope(topic, { n: 0 }, { id: 'good-0' }));
    await c.waitEvent((e) => e.id === 'good-0', { what: 'the first good event' });
    const before = await metric(node, 'switchyard_bus_malformed_total');

    // 0xc1 is never valid msgpack: random bytes that cannot decode to a map
    const garbage = Buffer.concat([Buffer.from([0xc1]), crypto.randomBytes(63)]);
    const bad = [
      ['random bytes', garbage, {}],
      ['JSON header, invalid JSON', '{"id":"bad-json","source":"e2e","data":{', { json: true }],
      ['msgpack array instead of map', mpEncode(['bad-array', topic, Date.now(), 'e2e', { x: 1 }]), {}],
      ['topic field not equal to the subject', envelope('events.org_123.mf.other', { x: 1 }, { id: 'bad-topic' }), {}],
      ['id of the wrong type', envelope(topic, { x: 1 }, { id: 12345 }), {}],
      ['JSON header, JSON array', '[1,2,3]', { json: true }],
      ['JSON header, id of the wrong type', JSON.stringify(envelope(topic, { x: 1 }, { id: 7 })), { json: true }],
      ['ts of the wrong type', envelope(topic, { x: 1 }, { id: 'bad-ts', ts: String(Date.now()) }), {}],
      ['source of the wrong type', envelope(topic, { x: 1 }, { id: 'bad-source', source: 42 }), {}],
      ['topic of the wrong type', envelope(topic, { x: 1 }, { id: 'bad-topic-type', topic: 42 }), {}],
      ['headers not a map', envelope(topic, { x: 1 }, { id: 'bad-headers', headers: ['a', 'b'] }), {}],
      ['header value not a string', envelope(topic, { x: 1 }, { id: 'bad-header-value', headers: { a: 1 } }), {}],
    ];
    const sendBad = async () => {
      for (const [, payload, opts] of bad) {
        if (opts.json) await publishEnvelope(nc, topic, payload, { headers: { 'Content-Type': 'application/json' } });
        else await publishEnvelope(nc, topic, payload);
      }
    };
    await sendBad();
    await publishEnvelope(nc, topic, envelope(topic, { n: 1 }, { id: 'good-1' }));
    const ev = await c.waitEvent((e) => e.id === 'good-1', { what: 'the good event right after the malformed ones' });
    assert.deepEqual({ subscription: ev.subscription, topic: ev.topic, data: ev.data }, { subscription: P, topic, data: { n: 1 } });

    let last;
    await waitUntil(async () => (last = await metric(node, 'switchyard_bus_malformed_total')) >= before + bad.length, {
      message: `switchyard_bus_malformed_total to reach ${before + bad.length}`,
    }).catch((e) => {
      e.message += `; was ${before}, now ${last}`;
      throw e;
    });

    // nothing malformed reached the client: only good-0 and good-1
    assert.deepEqual(c.events().map((e) => e.id), ['good-0', 'good-1'], `frames: ${c._dump()}`);

    // the node stays up; the other client is unaffected
    await publishEnvelope(nc, otherTopic, envelope(otherTopic, { o: 1 }, { id: 'other-1' }));
    await other.waitEvent((e) => e.id === 'other-1', { what: 'the other client\'s event' });
    assert.equal(node.exitInfo, null, 'node must stay up');
    assert.equal(c.closeInfo, null, 'subscriber must stay connected');
    assert.equal(other.closeInfo, null, 'other client must stay connected');
    assert.equal((await healthz(node)).json.bus, 'up');

    // a second round: still exact, still delivering
    await sendBad();
    await publishEnvelope(nc, topic, envelope(topic, { n: 2 }, { id: 'good-2' }));
    await c.waitEvent((e) => e.id === 'good-2', { what: 'the good event after the second malformed round' });
    await waitUntil(async () => (last = await metric(node, 'switchyard_bus_malformed_total')) >= before + 2 * bad.length, {
      message: `switchyard_bus_malformed_total to reach ${before + 2 * bad.length}`,
    }).catch((e) => {
      e.message += `; was ${before}, now ${last}`;
      throw e;
    });
    // barrier: one more good message, then the count must be exact (no double counting, no good message counted)
    await publishEnvelope(nc, topic, envelope(topic, { n: 3 }, { id: 'good-3' }));
    await c.waitEvent((e) => e.id === 'good-3');
    assert.equal(await metric(node, 'switchyard_bus_malformed_total'), before + 2 * bad.length, `malformed count: before ${before}, sent ${2 * bad.length}`);
    assert.deepEqual(c.events().map((e) => e.id), ['good-0', 'good-1', 'good-2', 'good-3'], `frames: ${c._dump()}`);
    assert.deepEqual(other.events().map((e) => e.id), ['other-1']);
  });
});
