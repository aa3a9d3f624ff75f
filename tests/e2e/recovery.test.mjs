// History and recovery (--history): event frames carry seq and epoch; a client that comes back
// with `recover` gets exactly what it missed, for exact and wildcard subscriptions, then live
// events with no gap and no duplicate across the switch, or a plain `recovered:false`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { headers as natsHeaders } from 'nats';
import { startJetStream, startNats, natsClient, publishEnvelope, envelope, startBridgedNode } from './lib/nats.mjs';
import { startNode, sleep, waitUntil } from './lib/node.mjs';

const T = { timeout: 120000 };
const ORG = 'org_123';
const STREAM = 'SWITCHYARD_EVENTS';

/** Waits until the node made the history stream (at its start, or again after a delete). */
async function streamCreated(jsm) {
  await waitUntil(
    async () => {
      try {
        await jsm.streams.info(STREAM);
        return true;
      } catch {
        return false;
      }
    },
    { timeout: 20000, message: `stream ${STREAM} created by the node` },
  );
}

/** A node with --history over a fresh JetStream nats-server, and a publisher connection. */
async function historyNode(t, flags = []) {
  const ns = await startJetStream(t);
  const node = await startBridgedNode(t, ns, ['--history', ...flags]);
  const nc = await natsClient(t, ns, 'publisher');
  const jsm = await nc.jetstreamManager();
  // The node creates the stream at start; wait for it before publishing.
  await streamCreated(jsm);
  return { ns, node, nc, jsm };
}

/** Publishes an event with id `id` on `topic` (one connection: stream order is publish order). */
function publish(nc, topic, id, data = {}) {
  const h = natsHeaders();
  h.set('Content-Type', 'application/json');
  nc.publish(topic, new TextEncoder().encode(JSON.stringify(envelope(topic, { id, ...data }, { id }))), { headers: h });
}

/** The position of the last event `c` received. */
function lastPosition(c) {
  const evs = c.events();
  const last = evs[evs.length - 1];
  assert.ok(last, 'the client received no event');
  assert.equal(typeof last.seq, 'number', `event frames carry seq: ${JSON.stringify(last)}`);
  assert.equal(typeof last.epoch, 'string', `event frames carry epoch: ${JSON.stringify(last)}`);
  return { since: last.seq, epoch: last.epoch };
}

/** A client subscribes to `pattern`, receives one event on `topic`, and drops; returns its position. */
async function receiveOneAndLeave(t, node, token, nc, pattern, topic) {
  const c = await node.connect({ t, token });
  await c.subscribe(pattern);
  publish(nc, topic, 'seen');
  await c.waitEvent((e) => e.id === 'seen');
  const pos = lastPosition(c);
  c.terminate();
  await c.waitClose();
  return pos;
}

async function recoverSubscribe(c, topic, recover) {
  const r = await c.request({ type: 'subscribe', topic, recover }, { timeout: 30000 });
  assert.equal(r.type, 'ok', `subscribe with recover should be accepted: ${JSON.stringify(r)}`);
  return r;
}

describe('recovery', () => {
  it('exact and wildcard subscriptions recover exactly what they missed, then go live with no gap or duplicate while events keep coming', T, async (t) => {
    const { node, nc } = await historyNode(t);
    const token = node.token({ sub: 'u_1', org: ORG });
    const EXACT = `events.${ORG}.rec.item.updated.r1`;
    const WILD = `events.${ORG}.rec.*.*.*`;
    const OTHER = [`events.${ORG}.rec.item.updated.r2`, `events.${ORG}.rec.order.created.o1`];
    const NOISE = `events.${ORG}.other.item.updated.r1`;
    const matches = (pattern, topic) => pattern === EXACT ? topic === EXACT : topic.startsWith(`events.${ORG}.rec.`);

    const published = []; // [topic, id] in publish order
    const pub = (topic, id) => {
      publish(nc, topic, id);
      published.push([topic, id]);
    };
    const a = await node.connect({ t, token });
    const b = await node.connect({ t, token });
    await a.subscribe(EXACT);
    await b.subscribe(WILD);
    for (let i = 0; i < 3; i++) {
      pub(EXACT, `before-${i}`);
      pub(OTHER[i % 2], `before-other-${i}`);
    }
    await nc.flush();
    await a.waitEvent((e) => e.id === 'before-2');
    await b.waitEvent((e) => e.id === 'before-other-2');
    const posA = lastPosition(a);
    const posB = lastPosition(b);
    a.terminate();
    b.terminate();
    await a.waitClose();
    await b.waitClose();
    const missedFrom = published.length;

    // 100 events on the exact topic, 100 more on other topics the wildcard matches, and noise.
    for (let i = 0; i < 100; i++) {
      pub(EXACT, `missed-${i}`);
      pub(OTHER[i % 2], `missed-other-${i}`);
      if (i % 10 === 0) pub(NOISE, `noise-${i}`);
    }
    await nc.flush();

    // Keep publishing through the reconnect and the switch to live delivery.
    let running = true;
    let n = 0;
    const publisher = (async () => {
      while (running) {
        pub(EXACT, `live-${n}`);
        pub(OTHER[n % 2], `live-other-${n}`);
        n++;
        await sleep(2);
      }
    })();
    await sleep(50);
    const a2 = await node.connect({ t, token });
    const b2 = await node.connect({ t, token });
    const [okA, okB] = await Promise.all([recoverSubscribe(a2, EXACT, posA), recoverSubscribe(b2, WILD, posB)]);
    for (const [ok, name] of [[okA, 'exact'], [okB, 'wildcard']]) {
      assert.equal(ok.recovered, true, `${name}: recovery must be complete: ${JSON.stringify(ok)}`);
      assert.equal(ok.epoch, posA.epoch, `${name}: same epoch`);
    }
    await sleep(200); // live events after the switch
    running = false;
    await publisher;
    pub(EXACT, 'final');
    await nc.flush();
    await a2.waitEvent((e) => e.id === 'final', { timeout: 20000 });
    await b2.waitEvent((e) => e.id === 'final', { timeout: 20000 });
    assert.ok(n > 20, `the publisher ran through the switch (${n} rounds)`);

    for (const [c, pattern, name] of [[a2, EXACT, 'exact'], [b2, WILD, 'wildcard']]) {
      const want = published.slice(missedFrom).filter(([topic]) => matches(pattern, topic)).map(([, id]) => id);
      const got = c.events().map((e) => e.id);
      assert.equal(new Set(got).size, got.length, `${name}: no duplicate (got ${got.length} events)`);
      assert.deepEqual(got, want, `${name}: exactly the missed events, then the live ones, in order`);
      const seqs = c.events().map((e) => e.seq);
      assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `${name}: seq increases`);
      // The ok marks the switch: replayed events before it, live ones after.
      const okAt = c.history.findIndex((f) => f.type === 'ok' && f.recovered !== undefined);
      const replayed = c.history.slice(0, okAt).filter((f) => f.type === 'event');
      const missed = name === 'exact' ? 100 : 200;
      assert.ok(replayed.length >= missed, `${name}: the ${missed} missed events come before the ok (got ${replayed.length})`);
      assert.deepEqual(replayed.slice(0, missed).map((e) => e.id), want.slice(0, missed));
      assert.equal(okAt >= 0 && (name === 'exact' ? okA : okB).seq, replayed[replayed.length - 1].seq, `${name}: the ok names the last replayed position`);
    }
  });

  it('recovers by time with since_ts', T, async (t) => {
    const { node, nc } = await historyNode(t);
    const token = node.token({ sub: 'u_1', org: ORG });
    const P = `events.${ORG}.ts.item.updated.*`;
    publish(nc, `events.${ORG}.ts.item.updated.x`, 'old');
    await nc.flush();
    await sleep(50);
    const since = Date.now();
    await sleep(50);
    for (let i = 0; i < 5; i++) publish(nc, `events.${ORG}.ts.item.updated.x`, `new-${i}`);
    await nc.flush();
    const c = await node.connect({ t, token });
    const ok = await recoverSubscribe(c, P, { since_ts: since });
    assert.equal(ok.recovered, true, JSON.stringify(ok));
    assert.deepEqual(c.events().map((e) => e.id), ['new-0', 'new-1', 'new-2', 'new-3', 'new-4']);
  });

  it('says recovered:false with reason retention once the stream dropped missed events, and replays what it kept', T, async (t) => {
    const { node, nc } = await historyNode(t, ['--history-max-msgs', '20']);
    const token = node.token({ sub: 'u_1', org: ORG });
    const P = `events.${ORG}.ret.*.*.*`;
    const pos = await receiveOneAndLeave(t, node, token, nc, P, `events.${ORG}.ret.a.b.c`);
    for (let i = 0; i < 50; i++) publish(nc, `events.${ORG}.ret.a.b.c`, `m-${i}`);
    await nc.flush();
    const c2 = await node.connect({ t, token });
    const ok = await recoverSubscribe(c2, P, pos);
    assert.equal(ok.recovered, false, JSON.stringify(ok));
    assert.equal(ok.reason, 'retention');
    const ids = c2.events().map((e) => e.id);
    assert.deepEqual(ids, Array.from({ length: 20 }, (_, i) => `m-${30 + i}`), 'the 20 events the stream kept');
    publish(nc, `events.${ORG}.ret.a.b.c`, 'after');
    await c2.waitEvent((e) => e.id === 'after');
  });

  it('says recovered:false with reason too_many past --history-replay-max, and goes live', T, async (t) => {
    const { node, nc } = await historyNode(t, ['--history-replay-max', '10']);
    const token = node.token({ sub: 'u_1', org: ORG });
    const P = `events.${ORG}.many.*.*.*`;
    const pos = await receiveOneAndLeave(t, node, token, nc, P, `events.${ORG}.many.a.b.c`);
    for (let i = 0; i < 30; i++) publish(nc, `events.${ORG}.many.a.b.c`, `m-${i}`);
    await nc.flush();
    const c2 = await node.connect({ t, token });
    const ok = await recoverSubscribe(c2, P, pos);
    assert.deepEqual([ok.recovered, ok.reason], [false, 'too_many'], JSON.stringify(ok));
    assert.equal(c2.events().length, 0, 'nothing replayed');
    publish(nc, `events.${ORG}.many.a.b.c`, 'after');
    await c2.waitEvent((e) => e.id === 'after');
    // Exactly 10 missed events still recover.
    const pos2 = lastPosition(c2);
    c2.terminate();
    await c2.waitClose();
    for (let i = 0; i < 10; i++) publish(nc, `events.${ORG}.many.a.b.c`, `n-${i}`);
    await nc.flush();
    const c3 = await node.connect({ t, token });
    const ok3 = await recoverSubscribe(c3, P, pos2);
    assert.equal(ok3.recovered, true, JSON.stringify(ok3));
    assert.equal(c3.events().length, 10);
  });

  it('says recovered:false with reason epoch after the stream is created anew, and delivers the new epoch live', T, async (t) => {
    const { node, nc, jsm } = await historyNode(t);
    const token = node.token({ sub: 'u_1', org: ORG });
    const P = `events.${ORG}.ep.*.*.*`;
    const pos = await receiveOneAndLeave(t, node, token, nc, P, `events.${ORG}.ep.a.b.c`);
    await jsm.streams.delete(STREAM);
    // The node notices within its check interval (5 s) and creates the stream again.
    await streamCreated(jsm);
    const c2 = await node.connect({ t, token });
    const ok = await recoverSubscribe(c2, P, pos);
    assert.deepEqual([ok.recovered, ok.reason], [false, 'epoch'], JSON.stringify(ok));
    assert.notEqual(ok.epoch, pos.epoch, 'a new epoch');
    publish(nc, `events.${ORG}.ep.a.b.c`, 'new');
    const ev = await c2.waitEvent((e) => e.id === 'new');
    assert.equal(ev.epoch, ok.epoch, `live events carry the new epoch: ${JSON.stringify(ev)}`);
    assert.equal(ev.seq, 1, 'the new stream starts at 1');
  });

  it('answers POST /v1/history with the last events before a position, newest last, as subscribing allows', T, async (t) => {
    const { node, nc } = await historyNode(t);
    const token = node.token({ sub: 'u_1', org: ORG });
    for (let i = 0; i < 30; i++) {
      publish(nc, `events.${ORG}.h.item.updated.${i % 3}`, `h-${i}`, { i });
      publish(nc, `events.${ORG}.x.item.updated.0`, `x-${i}`);
    }
    await nc.flush();
    await sleep(100);
    const page = await node.http('POST', '/v1/history', { token, body: { topic: `events.${ORG}.h.*.*.*`, limit: 5 } });
    assert.equal(page.status, 200, page.text);
    assert.deepEqual(page.json.events.map((e) => e.id), ['h-25', 'h-26', 'h-27', 'h-28', 'h-29']);
    assert.deepEqual(page.json.events[4].data, { id: 'h-29', i: 29 });
    assert.equal(typeof page.json.epoch, 'string');
    const before = page.json.events[0].seq;
    const older = await node.http('POST', '/v1/history', { token, body: { topic: `events.${ORG}.h.item.updated.1`, limit: 3, before } });
    assert.equal(older.status, 200, older.text);
    assert.deepEqual(older.json.events.map((e) => e.id), ['h-16', 'h-19', 'h-22']);
    const all = await node.http('POST', '/v1/history', { token, body: { topic: `events.${ORG}.h.*.*.*`, limit: 1000 } });
    assert.equal(all.json.events.length, 30, 'a limit past the stream returns all there is');

    const other = node.token({ sub: 'u_2', org: 'org_other' });
    const refused = await node.http('POST', '/v1/history', { token: other, body: { topic: `events.${ORG}.h.*.*.*` } });
    assert.equal(refused.status, 403, refused.text);
    const bad = await node.http('POST', '/v1/history', { token, body: { topic: `events.${ORG}.h.*.*.*`, limit: 0 } });
    assert.equal(bad.status, 400, bad.text);
    const anon = await node.http('POST', '/v1/history', { body: { topic: `events.${ORG}.h.*.*.*` } });
    assert.equal(anon.status, 401, anon.text);
  });

  it('without --history, recover answers recovered:false with reason unavailable and the subscription is live', T, async (t) => {
    const ns = await startNats(t);
    const node = await startBridgedNode(t, ns);
    const nc = await natsClient(t, ns, 'publisher');
    const c = await node.connect({ t, token: node.token({ sub: 'u_1', org: ORG }) });
    const P = `events.${ORG}.no.*.*.*`;
    const ok = await recoverSubscribe(c, P, { since: 5, epoch: 'abc' });
    assert.deepEqual([ok.recovered, ok.reason], [false, 'unavailable'], JSON.stringify(ok));
    await publishEnvelope(nc, `events.${ORG}.no.a.b.c`, envelope(`events.${ORG}.no.a.b.c`, 1, { id: 'live' }));
    const ev = await c.waitEvent((e) => e.id === 'live');
    assert.equal(ev.seq, undefined, 'no position without history');
    const r = await node.http('POST', '/v1/history', { token: node.token({ sub: 'u_1', org: ORG }), body: { topic: P } });
    assert.equal(r.status, 501, r.text);

    const local = await startNode([]);
    t.after(() => local.stop());
    const bad = await local.connect({ t, token: local.token({ sub: 'u_1', org: ORG }) });
    const r2 = await bad.request({ type: 'subscribe', topic: P, recover: { since: 'x' } });
    assert.equal(r2.type, 'error', `a malformed recover is refused: ${JSON.stringify(r2)}`);
    assert.equal(r2.code, 'bad_request');
  });
});
