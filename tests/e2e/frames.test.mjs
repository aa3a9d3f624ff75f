// Frame handling: malformed / unknown / incomplete / binary frames and the frame size limit.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode } from './lib/node.mjs';

const MAX_FRAME = 4096;
const T = { timeout: 30000 };

describe('frames', () => {
  let node, userToken, pubToken;
  before(async () => {
    node = await startNode(['--max-frame-size', String(MAX_FRAME)]);
    userToken = node.token({ sub: 'u_1', org: 'org_123' });
    pubToken = node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] });
  });
  after(async () => {
    await node?.stop();
  });

  /** The connection still answers subscribes and receives events. */
  async function assertWorks(c, suffix) {
    const topic = `events.org_123.frames.${suffix}`;
    await c.assertAlive(topic);
    const id = await node.publishOk(pubToken, topic, { suffix });
    const ev = await c.waitEvent((e) => e.id === id, { what: `event on ${topic}` });
    assert.deepEqual(ev.data, { suffix });
  }

  async function expectBadRequest(c, raw, { id, what }) {
    c.send(raw);
    const err = await c.waitFor((f) => f.type === 'error' || f.type === 'ok', { what: `reply to ${what}` });
    assert.equal(err.type, 'error', `${what}: expected an error frame, got ${JSON.stringify(err)}`);
    assert.equal(err.code, 'bad_request', `${what}: ${JSON.stringify(err)}`);
    assert.equal(typeof err.message, 'string', `${what}: error frame needs a message`);
    if (id === undefined) assert.ok(!('id' in err), `${what}: id must be omitted, got ${JSON.stringify(err)}`);
    else assert.equal(err.id, id, `${what}: ${JSON.stringify(err)}`);
  }

  it('malformed JSON -> error bad_request without id; connection keeps working', T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    for (const raw of ['{"type":', 'not json at all', '{"type":"subscribe","id":"x1","topic":"events.org_123.a"', "{'type':'subscribe'}"]) {
      await expectBadRequest(c, raw, { what: JSON.stringify(raw) });
    }
    assert.ok(!c.history.some((f) => f.type === 'ok' && f.id === 'x1'), 'a truncated subscribe must not be executed');
    await assertWorks(c, 'malformed');
  });

  it('JSON that is not an object -> error bad_request without id', T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    for (const raw of ['[]', '[{"type":"subscribe","id":"a1","topic":"events.org_123.a"}]', '"subscribe"', '42', 'null', 'true']) {
      await expectBadRequest(c, raw, { what: raw });
    }
    await assertWorks(c, 'nonobject');
  });

  it('unknown type -> error bad_request with the frame id', T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    await expectBadRequest(c, JSON.stringify({ type: 'frobnicate', id: 'u1', topic: 'events.org_123.a' }), { id: 'u1', what: 'unknown type' });
    await expectBadRequest(c, JSON.stringify({ type: 'Publish', id: 'u2', topic: 'events.org_123.a', data: {} }), { id: 'u2', what: 'type Publish (types are case-sensitive)' });
    await assertWorks(c, 'unknown');
  });

  it('missing fields -> error bad_request with the frame id', T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    await expectBadRequest(c, JSON.stringify({ type: 'subscribe', id: 'm1' }), { id: 'm1', what: 'subscribe without topic' });
    await expectBadRequest(c, JSON.stringify({ type: 'unsubscribe', id: 'm2' }), { id: 'm2', what: 'unsubscribe without topic' });
    await expectBadRequest(c, JSON.stringify({ id: 'm3', topic: 'events.org_123.a' }), { id: 'm3', what: 'frame without type' });
    await expectBadRequest(c, JSON.stringify({ type: 'publish', id: 'm4', data: {} }), { id: 'm4', what: 'publish without topic' });
    await assertWorks(c, 'missing');
  });

  it('binary frame -> error bad_request, not executed; connection keeps working', T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    c.ws.send(Buffer.from(JSON.stringify({ type: 'subscribe', id: 'b1', topic: 'events.org_123.frames.binary' })), { binary: true });
    const err = await c.waitFor((f) => f.type === 'error' || f.type === 'ok', { what: 'reply to a binary frame' });
    assert.equal(err.type, 'error', `binary frame: expected an error, got ${JSON.stringify(err)}`);
    assert.equal(err.code, 'bad_request', JSON.stringify(err));
    await assertWorks(c, 'afterbinary');
    assert.ok(!c.history.some((f) => f.id === 'b1' && f.type === 'ok'), 'binary subscribe must not be executed');
    assert.ok(!c.events((e) => e.subscription === 'events.org_123.frames.binary').length);
  });

  it('a large frame below --max-frame-size is accepted', T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    const base = JSON.stringify({ type: 'subscribe', id: 'big1', topic: 'events.org_123.frames.big' });
    const raw = base.slice(0, -1) + ' '.repeat(MAX_FRAME - 200 - base.length) + '}';
    assert.ok(Buffer.byteLength(raw) < MAX_FRAME - 100);
    c.send(raw);
    const r = await c.waitFor((f) => f.id === 'big1');
    assert.equal(r.type, 'ok', JSON.stringify(r));
  });

  it('an oversized frame -> close 1009; another client is unaffected', T, async (t) => {
    const other = await node.connect({ t, token: userToken });
    await other.subscribe('events.org_123.frames.bystander');
    const c = await node.connect({ t, token: userToken });
    const base = JSON.stringify({ type: 'subscribe', id: 'huge', topic: 'events.org_123.frames.huge' });
    c.send(base.slice(0, -1) + ' '.repeat(MAX_FRAME * 2) + '}');
    const close = await c.waitClose(5000);
    assert.equal(close.code, 1009, `close code (reason ${JSON.stringify(close.reason)})`);
    assert.ok(!c.history.some((f) => f.id === 'huge' && f.type === 'ok'), 'oversized subscribe must not be executed');
    const id = await node.publishOk(pubToken, 'events.org_123.frames.bystander', { still: 'here' });
    const ev = await other.waitEvent((e) => e.id === id);
    assert.deepEqual(ev.data, { still: 'here' });
    await other.assertAlive('events.org_123.frames.bystander2');
  });
});

describe('inbound rate limit', () => {
  const RATE = 20;
  let node, userToken, pubToken;
  before(async () => {
    node = await startNode(['--max-inbound-rate', String(RATE)]);
    userToken = node.token({ sub: 'u_1', org: 'org_123' });
    pubToken = node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] });
  });
  after(async () => {
    await node?.stop();
  });

  it('a flooding client is refused with rate_limited / closed with 4429; a calm client is unaffected', T, async (t) => {
    const calm = await node.connect({ t, token: node.token({ sub: 'u_calm', org: 'org_123' }) });
    await calm.subscribe('events.org_123.rate.calm');
    const flood = await node.connect({ t, token: userToken });
    for (let i = 0; i < RATE * 20 && flood.ws.readyState === flood.ws.OPEN; i++) {
      flood.send({ type: 'subscribe', id: `f${i}`, topic: 'events.org_123.rate.flood' });
    }
    const close = await flood.waitClose(10000);
    assert.equal(close.code, 4429, `flooding client close code (reason ${JSON.stringify(close.reason)})`);
    const errors = flood.history.filter((f) => f.type === 'error');
    assert.deepEqual([...new Set(errors.map((e) => e.code))].filter((c) => c !== 'rate_limited'), [], `error codes while flooding: ${JSON.stringify(errors.slice(0, 3))}`);
    const oks = flood.history.filter((f) => f.type === 'ok').length;
    assert.ok(oks < RATE * 20, `all ${oks} flooded frames were accepted`);

    assert.equal(calm.closeInfo, null, 'the calm client must stay connected');
    const id = await node.publishOk(pubToken, 'events.org_123.rate.calm', {});
    await calm.waitEvent((e) => e.id === id);
  });
});
