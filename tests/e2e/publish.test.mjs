// Publishing from clients over the WebSocket: the `publish` frame, on the
// in-process bus and over NATS. The same checks as POST /v1/publish (auth,
// topic grammar, pub_allow fenced to the token's org), and the event reaches
// every subscriber, the publisher's own session included, once.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, sleep } from './lib/node.mjs';
import { NatsServer, startNats, startBridgedNode, natsClient, mpDecode, waitBus } from './lib/nats.mjs';

const T = { timeout: 60000 };

/** Sends a publish frame and waits for its reply (ok or error). */
function publish(c, topic, data, extra = {}) {
  const frame = { type: 'publish', topic, ...extra };
  if (data !== undefined) frame.data = data;
  return c.request(frame);
}

/** Publishes and asserts the ok; returns the event id it names. */
async function publishOk(c, topic, data, extra = {}) {
  const r = await publish(c, topic, data, extra);
  assert.equal(r.type, 'ok', `publish to ${topic} should be accepted, got ${JSON.stringify(r)}`);
  assert.equal(typeof r.event_id, 'string', `the ok of a publish names the event id: ${JSON.stringify(r)}`);
  assert.ok(r.event_id.length > 0, 'event id must be non-empty');
  return r.event_id;
}

/** Publishes and asserts an error frame with `code` and the request id. */
async function publishRefused(c, topic, data, code, extra = {}) {
  const r = await publish(c, topic, data, extra);
  assert.equal(r.type, 'error', `publish to ${topic} should be refused, got ${JSON.stringify(r)}`);
  assert.equal(r.code, code, `publish to ${topic}: ${JSON.stringify(r)}`);
  assert.equal(typeof r.message, 'string', `error frame needs a message: ${JSON.stringify(r)}`);
  assert.ok(typeof r.id === 'string' && r.id.length > 0, `error frame echoes the request id: ${JSON.stringify(r)}`);
  return r;
}

/**
 * Waits until `c` has received the event `id`, then publishes a barrier event with `barrier`
 * (a client allowed to publish to `barrierTopic`, which `c` receives) so that a
 * duplicate of `id` would have arrived before it; asserts `id` arrived once.
 */
async function assertOnce(c, id, barrier, barrierTopic) {
  await c.waitState((x) => x.events((e) => e.id === id).length > 0, { what: `event ${id}` });
  const b = await publishOk(barrier, barrierTopic, { barrier: true });
  await c.waitEvent((e) => e.id === b, { what: `barrier event ${b}` });
  assert.equal(c.events((e) => e.id === id).length, 1, `event ${id} must arrive once: ${c._dump()}`);
}

/** The publish tests, on a node that `start()` gives (`{ node, stop }`). */
function publishSuite(bus, start) {
  describe(`publish frames (${bus} bus)`, () => {
    let env, node, pubToken;
    before(async () => {
      env = await start();
      node = env.node;
      pubToken = node.token({ sub: 'svc_pub', org: 'org_123', pub: ['events.org_123.pub.>'] });
    });
    after(async () => {
      await env?.stop();
    });

    it('an allowed publish reaches a subscriber once, with the data and the event id of the ok', T, async (t) => {
      const sub = await node.connect({ t, token: node.token({ sub: 'u_sub', org: 'org_123' }) });
      const P = 'events.org_123.pub.ok.*';
      await sub.subscribe(P);
      const pub = await node.connect({ t, token: pubToken });
      const data = { title: 'Ship it', n: [1, 2.5, null, true], nested: { s: 'héllo ✓' } };
      const topic = 'events.org_123.pub.ok.t_1';
      const before = Date.now();
      const id = await publishOk(pub, topic, data);
      const ev = await sub.waitEvent((e) => e.id === id, { what: 'the published event' });
      assert.deepEqual(
        { subscription: ev.subscription, topic: ev.topic, id: ev.id, data: ev.data },
        { subscription: P, topic, id, data },
        `event frame: ${JSON.stringify(ev)}`,
      );
      assert.equal(typeof ev.ts, 'number', `event carries ts: ${JSON.stringify(ev)}`);
      assert.ok(ev.ts >= before - 5000 && ev.ts <= Date.now() + 5000, `ts ${ev.ts} should be about now`);
      await assertOnce(sub, id, pub, 'events.org_123.pub.ok.barrier');
      // the publisher did not subscribe: it gets the ok, no event
      assert.deepEqual(pub.events(), [], `the publisher is not subscribed: ${pub._dump()}`);

      // without data the event carries null
      const idNull = await publishOk(pub, 'events.org_123.pub.ok.t_2');
      const evNull = await sub.waitEvent((e) => e.id === idNull, { what: 'the event without data' });
      assert.equal(evNull.data, null, `event without data: ${JSON.stringify(evNull)}`);
    });

    it('a publisher subscribed to the topic receives its own event once', T, async (t) => {
      const pub = await node.connect({ t, token: pubToken });
      const P = 'events.org_123.pub.self.>';
      await pub.subscribe(P);
      const other = await node.connect({ t, token: node.token({ sub: 'u_other', org: 'org_123' }) });
      await other.subscribe(P);
      const id = await publishOk(pub, 'events.org_123.pub.self.x', { self: true });
      const ev = await pub.waitEvent((e) => e.id === id, { what: 'the publisher’s own event' });
      assert.deepEqual(ev.data, { self: true });
      assert.equal(ev.subscription, P);
      await assertOnce(pub, id, pub, 'events.org_123.pub.self.barrier');
      await assertOnce(other, id, pub, 'events.org_123.pub.self.barrier2');
    });

    it('an event id chosen by the client is the event’s id; an invalid one is a bad_request', T, async (t) => {
      const sub = await node.connect({ t, token: node.token({ sub: 'u_sub', org: 'org_123' }) });
      await sub.subscribe('events.org_123.pub.eid.*');
      const pub = await node.connect({ t, token: pubToken });
      const chosen = `client-evt-${Date.now()}`;
      const id = await publishOk(pub, 'events.org_123.pub.eid.a', { chosen: true }, { event_id: chosen });
      assert.equal(id, chosen, 'the ok names the chosen event id');
      const ev = await sub.waitEvent((e) => e.id === chosen, { what: 'the event with the chosen id' });
      assert.deepEqual(ev.data, { chosen: true });
      const longest = 'e'.repeat(128);
      assert.equal(await publishOk(pub, 'events.org_123.pub.eid.b', 1, { event_id: longest }), longest);
      await sub.waitEvent((e) => e.id === longest, { what: 'the event with a 128-byte id' });

      for (const bad of ['', 'e'.repeat(129), 42, null, ['a']]) {
        const r = await publishRefused(pub, 'events.org_123.pub.eid.c', { bad: true }, 'bad_request', { event_id: bad });
        assert.match(r.message, /event_id/, `message names the field: ${JSON.stringify(r)}`);
      }
      const barrier = await publishOk(pub, 'events.org_123.pub.eid.d', {});
      await sub.waitEvent((e) => e.id === barrier);
      assert.deepEqual(sub.events((e) => e.topic === 'events.org_123.pub.eid.c'), [], 'refused publishes deliver nothing');
    });

    it('before auth a publish is refused as unauthorized and delivers nothing', T, async (t) => {
      const sub = await node.connect({ t, token: node.token({ sub: 'u_sub', org: 'org_123' }) });
      await sub.subscribe('events.org_123.pub.early.*');
      const c = await node.connect({ t, via: 'none' });
      const r = await publishRefused(c, 'events.org_123.pub.early.x', { early: true }, 'unauthorized');
      assert.equal(r.message, 'authenticate first');
      // malformed publishes too: unauthorized comes first
      await publishRefused(c, undefined, undefined, 'unauthorized');
      // the connection may still authenticate, then publish
      const auth = await c.request({ type: 'auth', token: pubToken });
      assert.equal(auth.type, 'ok', `auth after the refusal: ${JSON.stringify(auth)}`);
      const id = await publishOk(c, 'events.org_123.pub.early.y', { late: true });
      await sub.waitEvent((e) => e.id === id);
      assert.deepEqual(sub.events((e) => e.topic === 'events.org_123.pub.early.x'), [], 'the refused publish delivers nothing');
    });

    it('a topic outside pub_allow is forbidden; a token without pub_allow may not publish', T, async (t) => {
      const sub = await node.connect({ t, token: node.token({ sub: 'u_sub', org: 'org_123' }) });
      await sub.subscribe('events.org_123.>');
      const pub = await node.connect({ t, token: pubToken });
      const r = await publishRefused(pub, 'events.org_123.other.x', { no: 1 }, 'forbidden');
      assert.equal(r.message, 'token may not publish to events.org_123.other.x');
      const user = await node.connect({ t, token: node.token({ sub: 'u_plain', org: 'org_123' }) });
      await publishRefused(user, 'events.org_123.pub.plain', { no: 2 }, 'forbidden');
      const barrier = await publishOk(pub, 'events.org_123.pub.forbid.barrier', {});
      await sub.waitEvent((e) => e.id === barrier);
      const leaked = sub.events((e) => e.topic === 'events.org_123.other.x' || e.topic === 'events.org_123.pub.plain');
      assert.deepEqual(leaked, [], 'forbidden publishes deliver nothing');
      assert.equal(pub.closeInfo, null, 'a refused publish keeps the connection open');
    });

    it('pub_allow never reaches another org: events.> of org_A publishes into org_A only', T, async (t) => {
      const orgB = await node.connect({ t, token: node.token({ sub: 'u_b', org: 'org_B' }) });
      await orgB.subscribe('events.org_B.>');
      const orgA = await node.connect({ t, token: node.token({ sub: 'u_a', org: 'org_A' }) });
      await orgA.subscribe('events.org_A.>');
      // the token tool refuses such a grant, so sign it by hand
      const wide = node.sign({ ...node.claims({ sub: 'svc_a', org: 'org_A' }), pub_allow: ['events.>'] });
      const pub = await node.connect({ t, token: wide });
      for (const topic of ['events.org_B.x.y', 'events.org_B.tasks.task.completed.t_1', 'other.org_B.x']) {
        const r = await publishRefused(pub, topic, { cross: true }, 'forbidden');
        assert.equal(r.message, `token may not publish to ${topic}`);
      }
      const id = await publishOk(pub, 'events.org_A.x.y', { own: true });
      await orgA.waitEvent((e) => e.id === id, { what: 'the event in the token’s own org' });
      // a barrier in org_B, from an org_B publisher
      const pubB = await node.connect({ t, token: node.token({ sub: 'svc_b', org: 'org_B', pub: ['events.org_B.>'] }) });
      const barrier = await publishOk(pubB, 'events.org_B.barrier', {});
      await orgB.waitEvent((e) => e.id === barrier);
      assert.deepEqual(orgB.events((e) => e.id !== barrier), [], `nothing from org_A reaches org_B: ${orgB._dump()}`);
    });

    it('an invalid topic is a bad_topic with the validator’s reason; missing fields are a bad_request', T, async (t) => {
      const pub = await node.connect({ t, token: pubToken });
      for (const topic of ['events.org_123.pub.*', 'events.org_123.pub.>', 'events..pub', 'events.org_123.pub.a b', '', 'x'.repeat(300)]) {
        const r = await publishRefused(pub, topic, {}, 'bad_topic');
        assert.ok(r.message.length > 0, `bad_topic names the reason: ${JSON.stringify(r)}`);
      }
      await publishRefused(pub, undefined, {}, 'bad_request');
      await publishRefused(pub, 42, {}, 'bad_request');
      assert.equal(pub.closeInfo, null, 'refused publishes keep the connection open');
      await publishOk(pub, 'events.org_123.pub.valid', {});
    });
  });
}

publishSuite('in-process', async () => {
  const node = await startNode();
  return { node, stop: () => node.stop() };
});

publishSuite('NATS', async () => {
  const ns = await NatsServer.start();
  const node = await startBridgedNode(undefined, ns);
  await waitBus(node, 'up');
  return {
    node,
    ns,
    stop: async () => {
      await node.stop();
      await ns.stop();
    },
  };
});

describe('publish frames over NATS', () => {
  it('the event travels as an envelope on the subject, with the token’s sub as its source', T, async (t) => {
    const ns = await startNats(t);
    const node = await startBridgedNode(t, ns);
    await waitBus(node, 'up');
    const nc = await natsClient(t, ns, 'observer');
    const got = [];
    nc.subscribe('events.org_123.env.>', { callback: (err, msg) => !err && got.push({ subject: msg.subject, env: mpDecode(msg.data) }) });
    await nc.flush();
    const pub = await node.connect({ t, token: node.token({ sub: 'svc_env', org: 'org_123', pub: ['events.org_123.env.>'] }) });
    const id = await publishOk(pub, 'events.org_123.env.a', { via: 'nats' }, { event_id: 'env-1' });
    assert.equal(id, 'env-1');
    const deadline = Date.now() + 10000;
    while (got.length === 0 && Date.now() < deadline) await sleep(20);
    assert.equal(got.length, 1, `one envelope on NATS: ${JSON.stringify(got)}`);
    assert.equal(got[0].subject, 'events.org_123.env.a');
    assert.equal(got[0].env.id, 'env-1');
    assert.equal(got[0].env.source, 'svc_env');
    assert.deepEqual(got[0].env.data, { via: 'nats' });
  });

  it('with NATS down a publish is unavailable with the bus status; the connection stays', T, async (t) => {
    const ns = await startNats(t);
    const node = await startBridgedNode(t, ns);
    await waitBus(node, 'up');
    const pub = await node.connect({ t, token: node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] }) });
    await ns.kill('SIGKILL');
    await waitBus(node, 'down');
    const r = await publishRefused(pub, 'events.org_123.down.x', { down: true }, 'unavailable');
    assert.equal(r.message, 'event bus unavailable; retry later');
    assert.equal(pub.closeInfo, null, 'the connection stays open');
    await pub.assertAlive();
  });
});

describe('publish frames and the inbound rate limit', () => {
  const RATE = 10;
  let node;
  before(async () => {
    node = await startNode(['--max-inbound-rate', String(RATE)]);
  });
  after(async () => {
    await node?.stop();
  });

  it('publish frames count against the inbound rate: a flood is refused and closed with 4429', T, async (t) => {
    const sub = await node.connect({ t, token: node.token({ sub: 'u_sub', org: 'org_123' }) });
    await sub.subscribe('events.org_123.flood.*');
    const pub = await node.connect({ t, token: node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.flood.>'] }) });
    const SENT = RATE * 20;
    let sent = 0;
    for (let i = 0; i < SENT && pub.ws.readyState === pub.ws.OPEN; i++, sent++) {
      pub.send({ type: 'publish', id: `f${i}`, topic: 'events.org_123.flood.x', event_id: `flood-${i}`, data: { i } });
    }
    const close = await pub.waitClose(10000);
    assert.equal(close.code, 4429, `flooding publisher close code (reason ${JSON.stringify(close.reason)})`);
    const limited = pub.history.filter((f) => f.type === 'error' && f.code === 'rate_limited').length;
    const oks = pub.history.filter((f) => f.type === 'ok').map((f) => f.event_id);
    assert.ok(limited > 0, `some publishes must be refused with rate_limited: ${pub._dump()}`);
    // every accepted publish is delivered; none beyond what the limiter let through
    const calm = await node.connect({ t, token: node.token({ sub: 'svc2', org: 'org_123', pub: ['events.org_123.flood.>'] }) });
    const barrier = await publishOk(calm, 'events.org_123.flood.barrier', {});
    await sub.waitEvent((e) => e.id === barrier);
    const delivered = sub.events((e) => e.topic === 'events.org_123.flood.x').map((e) => e.id);
    for (const id of oks) assert.ok(delivered.includes(id), `accepted ${id} must be delivered`);
    assert.ok(delivered.length <= sent - limited, `${delivered.length} delivered, but ${limited} of ${sent} were refused`);
    assert.equal(new Set(delivered).size, delivered.length, 'each event once');
  });
});
