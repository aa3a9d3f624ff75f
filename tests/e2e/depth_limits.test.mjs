// Nesting-depth limit (--max-json-depth, default 64) on every source of structured input:
// client frames, HTTP publish bodies and NATS envelopes (msgpack and JSON). Too deep is refused
// like any malformed input, counted in switchyard_input_rejected_total, and the node keeps serving.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, waitUntil } from './lib/node.mjs';
import { startNats, natsClient, publishEnvelope, envelope, startBridgedNode, metric } from './lib/nats.mjs';

const T = { timeout: 60000 };
const LIMIT = 64;

const deepJson = (depth) => '['.repeat(depth) + ']'.repeat(depth);

/** A msgpack envelope {"data": [[[...0...]]]} with `depth` fixarrays (0x91) around a 0. */
function deepMsgpackEnvelope(depth) {
  const head = Buffer.from([0x81, 0xa4, ...Buffer.from('data')]);
  return Buffer.concat([head, Buffer.alloc(depth, 0x91), Buffer.from([0x00])]);
}

const rejected = (node, source, reason) => metric(node, 'switchyard_input_rejected_total', { source, reason });

describe('nesting depth limits', () => {
  it('a deep client frame gets an error frame and the connection keeps working', T, async (t) => {
    const node = await startNode([]);
    t.after(() => node.stop());
    const c = await node.connect({ t, token: node.token({ sub: 'u_1', org: 'org_123' }) });

    c.send(`{"type":"subscribe","id":"deep","topic":"events.org_123.a","x":${deepJson(10000)}}`);
    const err = await c.waitFor((f) => f.type === 'error', { what: 'the error frame for the deep frame' });
    assert.deepEqual(err, { type: 'error', code: 'bad_request', message: `frame has nesting deeper than ${LIMIT}` });

    // at the limit is fine: the frame object is level 1, so 63 more levels inside it
    const ok = await c.request({ type: 'subscribe', topic: 'events.org_123.a', x: JSON.parse(deepJson(LIMIT - 1)) });
    assert.equal(ok.type, 'ok', `reply to a frame at the limit: ${JSON.stringify(ok)}`);
    // one over: refused like a frame that is not JSON, so without the id it could not read
    c.send({ type: 'subscribe', id: 'over', topic: 'events.org_123.b', x: JSON.parse(deepJson(LIMIT)) });
    const over = await c.waitFor((f) => f.type === 'error', { what: 'the error frame for one level too deep' });
    assert.deepEqual(over, err);

    const pub = node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] });
    await node.publishOk(pub, 'events.org_123.a', { n: 1 });
    const ev = await c.waitEvent();
    assert.deepEqual(ev.data, { n: 1 });
    assert.equal(c.closeInfo, null, 'the connection stays open');
    assert.equal(await rejected(node, 'client', 'too_deep'), 2);
    assert.equal(await rejected(node, 'client', 'malformed'), 0);
  });

  it('a 200,000-deep HTTP publish body gets 400 and the node still serves', T, async (t) => {
    const node = await startNode(['--max-frame-size', '1048576']);
    t.after(() => node.stop());
    const c = await node.connect({ t, token: node.token({ sub: 'u_1', org: 'org_123' }) });
    assert.equal((await c.request({ type: 'subscribe', topic: 'events.org_123.h' })).type, 'ok');
    const pub = node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] });

    const body = `{"topic":"events.org_123.h","data":${deepJson(200000)}}`;
    const r = await node.publish(pub, body);
    assert.equal(r.status, 400, `deep body: ${r.status} ${r.text.slice(0, 200)}`);
    assert.deepEqual(r.json, { code: 'bad_request', message: `body has nesting deeper than ${LIMIT}` });

    // data at the limit (the body object is level 1) is accepted and delivered as sent
    const data = JSON.parse(deepJson(LIMIT - 1));
    await node.publishOk(pub, 'events.org_123.h', data);
    const ev = await c.waitEvent();
    assert.deepEqual(ev.data, data);
    assert.equal(node.exitInfo, null, 'node must stay up');
    assert.equal(await rejected(node, 'http', 'too_deep'), 1);
    assert.equal(await rejected(node, 'http', 'malformed'), 0);
  });

  it('deep NATS envelopes are dropped, counted and logged once per source; the next good one is delivered', T, async (t) => {
    const ns = await startNats(t);
    const node = await startBridgedNode(t, ns);
    const c = await node.connect({ t, token: node.token({ sub: 'u_1', org: 'org_123' }) });
    await c.subscribe('events.org_123.>');
    const nc = await natsClient(t, ns, 'deep-publisher');
    const topic = 'events.org_123.deep.t';
    const otherSource = 'events.org_123.deep2.t';
    const malformedBefore = await metric(node, 'switchyard_bus_malformed_total');

    await publishEnvelope(nc, topic, deepMsgpackEnvelope(70000));
    await publishEnvelope(nc, topic, `{"data":${deepJson(70001)}}`, { headers: { 'Content-Type': 'application/json' } });
    // another source: its own log line, written after any line about the first source
    await publishEnvelope(nc, otherSource, deepMsgpackEnvelope(LIMIT));
    await publishEnvelope(nc, topic, envelope(topic, { n: 1 }, { id: 'good-1' }));

    // NATS delivers in order: once good-1 arrives, the deep ones before it were handled (and dropped)
    const ev = await c.waitEvent((e) => e.id === 'good-1', { what: 'the good event after the deep ones' });
    assert.deepEqual(ev.data, { n: 1 });
    assert.deepEqual(c.events().map((e) => e.id), ['good-1'], `frames: ${c._dump()}`);
    assert.equal(await metric(node, 'switchyard_bus_malformed_total'), malformedBefore + 3);
    assert.equal(await rejected(node, 'nats', 'too_deep'), 3);
    assert.equal(await rejected(node, 'nats', 'malformed'), 0);

    // stderr reaches us on its own pipe: wait for the second source's line, then count
    await waitUntil(() => /dropped malformed envelope on events\.org_123\.deep2\.t/.test(node.stderr), {
      message: `the log line about source deep2; stderr: ${node.stderr.slice(-2000)}`,
    });
    const lines = node.stderr.split('\n').filter((l) => /dropped malformed envelope on events\.org_123\.deep\.t /.test(l));
    assert.equal(lines.length, 1, `one line for source deep within the interval, got:\n${lines.join('\n')}`);
    assert.match(lines[0], new RegExp(`envelope has nesting deeper than ${LIMIT}`));
    assert.equal(node.exitInfo, null, 'node must stay up');
    assert.equal(c.closeInfo, null, 'subscriber must stay connected');
  });
});
