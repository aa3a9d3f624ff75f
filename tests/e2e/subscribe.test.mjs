// Subscriptions: wildcard matching, overlap, permissions, pattern validation, limits, unsubscribe, event shape.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, waitUntil } from './lib/node.mjs';

const MAX_SUBS = 8;
const T = { timeout: 30000 };

describe('subscribe', () => {
  let node, userToken, adminToken;
  const pubTokens = {};

  before(async () => {
    node = await startNode(['--max-subscriptions', String(MAX_SUBS)]);
    userToken = node.token({ sub: 'u_1', org: 'org_123' });
    adminToken = node.token({ sub: 'u_admin', org: 'org_123', admin: true });
    pubTokens.org_123 = node.token({ sub: 'svc_pub', org: 'org_123', pub: ['events.org_123.>'] });
    pubTokens.org_456 = node.token({ sub: 'svc_pub', org: 'org_456', pub: ['events.org_456.>'] });
  });
  after(async () => {
    await node?.stop();
  });

  const pub = (topic, data = {}, extra = {}) => node.publishOk(pubTokens[topic.split('.')[1]], topic, data, extra);

  /**
   * Publishes each of `miss` (must not be delivered), then `sentinel` (must be delivered), waits
   * for the sentinel and asserts none of the `miss` events arrived before it.
   */
  async function assertNotDelivered(c, miss, sentinel) {
    const missIds = new Set();
    for (const topic of miss) missIds.add(await pub(topic, { miss: topic }));
    const sid = await pub(sentinel, { sentinel: true });
    await c.waitEvent((e) => e.id === sid, { what: `sentinel event on ${sentinel}` });
    const wrong = c.events((e) => missIds.has(e.id) || miss.includes(e.topic));
    assert.deepEqual(wrong.map((e) => `${e.topic} (via ${e.subscription})`), [], 'events delivered that the subscription does not match');
  }

  it('"*" matches exactly one token', T, async (t) => {
    const P = 'events.org_123.tasks.task.completed.*';
    const c = await node.connect({ t, token: userToken });
    await c.subscribe(P);
    const id = await pub('events.org_123.tasks.task.completed.t1', { n: 1 });
    const ev = await c.waitEvent((e) => e.id === id);
    assert.equal(ev.subscription, P);
    assert.equal(ev.topic, 'events.org_123.tasks.task.completed.t1');
    assert.deepEqual(ev.data, { n: 1 });
    await assertNotDelivered(
      c,
      [
        'events.org_123.tasks.task.completed', // zero tokens for '*'
        'events.org_123.tasks.task.completed.t1.extra', // two tokens for '*'
        'events.org_123.tasks.task.failed.t1', // non-matching literal token
        'events.org_123.tasks.task.completedX.t1',
        'events.org_456.tasks.task.completed.t1', // other org
      ],
      'events.org_123.tasks.task.completed.sentinel',
    );
  });

  it('"*" in the middle of a pattern', T, async (t) => {
    const P = 'events.org_123.*.created';
    const c = await node.connect({ t, token: userToken });
    await c.subscribe(P);
    const id = await pub('events.org_123.users.created', { u: 1 });
    const ev = await c.waitEvent((e) => e.id === id);
    assert.equal(ev.subscription, P);
    await assertNotDelivered(
      c,
      ['events.org_123.users.x.created', 'events.org_123.created', 'events.org_123.users.created.x', 'events.org_456.users.created'],
      'events.org_123.groups.created',
    );
  });

  it('">" matches one or more trailing tokens', T, async (t) => {
    const P = 'events.org_123.billing.>';
    const c = await node.connect({ t, token: userToken });
    await c.subscribe(P);
    const deep = 'events.org_123.billing.' + Array.from({ length: 13 }, (_, i) => `l${i}`).join('.'); // 16 tokens
    for (const topic of ['events.org_123.billing.invoice', 'events.org_123.billing.invoice.paid', deep]) {
      const id = await pub(topic, { topic });
      const ev = await c.waitEvent((e) => e.id === id, { what: `event on ${topic}` });
      assert.equal(ev.subscription, P);
      assert.equal(ev.topic, topic);
    }
    await assertNotDelivered(
      c,
      ['events.org_123.billing', 'events.org_123.billingx.invoice', 'events.org_123.other.billing.x', 'events.org_456.billing.invoice'],
      'events.org_123.billing.sentinel',
    );
  });

  it('overlapping subscriptions get one event frame each', T, async (t) => {
    const star = 'events.org_123.ov.*';
    const gt = 'events.org_123.ov.>';
    const c = await node.connect({ t, token: userToken });
    await c.subscribe(star);
    await c.subscribe(gt);
    const id = await pub('events.org_123.ov.a', { v: 1 });
    await c.waitState((cl) => cl.events((e) => e.id === id).length >= 2, { what: 'two event frames for one publish' });
    // a deeper topic only matches '>'; it also acts as a barrier for extra copies of the first event
    const id2 = await pub('events.org_123.ov.a.b', { v: 2 });
    await c.waitEvent((e) => e.id === id2);
    const first = c.events((e) => e.id === id);
    assert.deepEqual(first.map((e) => e.subscription).sort(), [gt, star].sort(), `frames for ov.a: ${JSON.stringify(first)}`);
    for (const e of first) {
      assert.equal(e.topic, 'events.org_123.ov.a');
      assert.deepEqual(e.data, { v: 1 });
    }
    const second = c.events((e) => e.id === id2);
    assert.deepEqual(second.map((e) => e.subscription), [gt], `frames for ov.a.b: ${JSON.stringify(second)}`);
  });

  it('subscribing twice to the same pattern is ok and still delivers once', T, async (t) => {
    const P = 'events.org_123.dup.*';
    const c = await node.connect({ t, token: userToken });
    await c.subscribe(P);
    await c.subscribe(P);
    const id1 = await pub('events.org_123.dup.a', { n: 1 });
    const id2 = await pub('events.org_123.dup.a', { n: 2 }); // same topic: ordered after id1
    await c.waitEvent((e) => e.id === id2);
    assert.equal(c.events((e) => e.id === id1).length, 1, `copies of the first event: ${JSON.stringify(c.events())}`);
    assert.equal(c.events((e) => e.id === id2).length, 1);
    await waitUntil(async () => (await node.subscribers(adminToken, P)) === 1, { message: `${P} to have 1 subscriber in introspection` });
  });

  it('subscribing outside events.<own org>. is forbidden', T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    const outside = [
      'events.org_456.>',
      'events.org_456.tasks.x',
      'events.org_1234.tasks.x', // shares a string prefix with org_123
      'events.*.tasks.x',
      'events.>',
      '>',
      'events.org_123',
      'other.org_123.x',
    ];
    for (const topic of outside) {
      const r = await c.request({ type: 'subscribe', topic });
      assert.equal(r.type, 'error', `subscribe ${topic} must be refused, got ${JSON.stringify(r)}`);
      assert.equal(r.code, 'forbidden', `subscribe ${topic}: ${JSON.stringify(r)}`);
      assert.equal(typeof r.message, 'string');
    }
    await c.assertAlive('events.org_123.forbidden.after');
    const topics = (await node.topics(adminToken)).map((x) => x.pattern);
    for (const topic of outside) assert.ok(!topics.includes(topic), `${topic} must not appear in introspection`);
    // and nothing from another org leaks in
    await c.subscribe('events.org_123.xo.>');
    await assertNotDelivered(c, ['events.org_456.xo.a'], 'events.org_123.xo.a');
  });

  it('a sub_allow claim narrower than the default is enforced', T, async (t) => {
    const token = node.token({ sub: 'u_narrow', org: 'org_123', subAllow: ['events.org_123.tasks.>'] });
    const c = await node.connect({ t, token });
    for (const topic of ['events.org_123.tasks.a', 'events.org_123.tasks.*', 'events.org_123.tasks.>']) await c.subscribe(topic);
    for (const topic of ['events.org_123.billing.a', 'events.org_123.>', 'events.org_123.*.a', 'events.org_456.tasks.a']) {
      const r = await c.request({ type: 'subscribe', topic });
      assert.equal(r.type, 'error', `subscribe ${topic} must be refused under sub_allow events.org_123.tasks.>, got ${JSON.stringify(r)}`);
      assert.equal(r.code, 'forbidden', `subscribe ${topic}: ${JSON.stringify(r)}`);
    }
    const id = await pub('events.org_123.tasks.a', {});
    await c.waitState((cl) => cl.events((e) => e.id === id).length === 3, { what: '3 frames (one per allowed subscription)' });
    await assertNotDelivered(c, ['events.org_123.billing.a'], 'events.org_123.tasks.b');
  });

  it('sub_allow cannot grant another org', T, async (t) => {
    // Hand-signed: the token tool refuses a sub_allow outside the org.
    const token = node.sign({ ...node.claims({ sub: 'u_sneaky', org: 'org_123' }), sub_allow: ['events.org_456.>'] });
    const c = await node.connect({ t, token });
    const r = await c.request({ type: 'subscribe', topic: 'events.org_456.tasks.a' });
    assert.equal(r.type, 'error', `got ${JSON.stringify(r)}`);
    assert.equal(r.code, 'forbidden', `got ${JSON.stringify(r)}`);
  });

  it('malformed patterns -> bad_topic, connection stays usable', T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    const bad = {
      'empty token': 'events.org_123..x',
      'trailing dot': 'events.org_123.x.',
      '">" not last': 'events.org_123.>.x',
      'partial wildcard "*"': 'events.org_123.x*',
      'partial wildcard ">"': 'events.org_123.a>',
      '17 tokens': 'events.org_123.' + Array.from({ length: 15 }, (_, i) => `t${i}`).join('.'),
      'more than 256 bytes': 'events.org_123.' + 'a'.repeat(250),
      space: 'events.org_123.a b',
      slash: 'events.org_123.a/b',
      colon: 'events.org_123.a:b',
      'non-ASCII': 'events.org_123.é',
    };
    for (const [name, topic] of Object.entries(bad)) {
      const r = await c.request({ type: 'subscribe', topic });
      assert.equal(r.type, 'error', `${name} (${topic}) must be refused, got ${JSON.stringify(r)}`);
      assert.equal(r.code, 'bad_topic', `${name} (${topic}): ${JSON.stringify(r)}`);
    }
    await c.assertAlive('events.org_123.badtopic.after');
  });

  it('a pattern of exactly 16 tokens and 256 bytes is accepted', T, async (t) => {
    const lens = [...Array(13).fill(16), 20]; // 15 + 13*16 + 20 + 13 dots = 256
    const topic = 'events.org_123.' + lens.map((n, i) => String.fromCharCode(97 + i).repeat(n)).join('.');
    assert.equal(topic.split('.').length, 16);
    assert.equal(Buffer.byteLength(topic), 256);
    const c = await node.connect({ t, token: userToken });
    await c.subscribe(topic);
    const id = await pub(topic, { max: true });
    const ev = await c.waitEvent((e) => e.id === id);
    assert.equal(ev.topic, topic);
  });

  it(`more than --max-subscriptions (${MAX_SUBS}) distinct patterns -> too_many_subscriptions`, T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    for (let i = 0; i < MAX_SUBS; i++) await c.subscribe(`events.org_123.lim.p${i}`);
    const r = await c.request({ type: 'subscribe', topic: `events.org_123.lim.p${MAX_SUBS}` });
    assert.equal(r.type, 'error', `subscription #${MAX_SUBS + 1} must be refused, got ${JSON.stringify(r)}`);
    assert.equal(r.code, 'too_many_subscriptions', JSON.stringify(r));
    // the refused pattern is not registered
    const id = await pub(`events.org_123.lim.p${MAX_SUBS}`, {});
    await assertNotDelivered(c, [], 'events.org_123.lim.p0');
    assert.equal(c.events((e) => e.id === id).length, 0, 'refused subscription must not deliver');
    // freeing a slot allows a new pattern
    await c.unsubscribe('events.org_123.lim.p0');
    await c.subscribe(`events.org_123.lim.p${MAX_SUBS}`);
    // re-subscribing an existing pattern at the limit is idempotent, not a new subscription
    await c.subscribe('events.org_123.lim.p1');
  });

  it('unsubscribe stops delivery and the pattern vanishes from introspection', T, async (t) => {
    const P = 'events.org_123.unsub.*';
    const Q = 'events.org_123.unsub.>';
    const c = await node.connect({ t, token: userToken });
    await c.subscribe(P);
    await c.subscribe(Q);
    await waitUntil(async () => (await node.subscribers(adminToken, P)) === 1, { message: `${P} in /v1/introspect/topics` });
    const id0 = await pub('events.org_123.unsub.a', { n: 0 });
    await c.waitState((cl) => cl.events((e) => e.id === id0).length === 2, { what: 'delivery via both patterns' });

    const r = await c.request({ type: 'unsubscribe', topic: P });
    assert.deepEqual({ type: r.type, id: r.id }, { type: 'ok', id: r.id }, JSON.stringify(r));
    await waitUntil(async () => !(await node.topics(adminToken)).some((x) => x.pattern === P), {
      message: `${P} to vanish from /v1/introspect/topics`,
    });
    assert.equal(await node.subscribers(adminToken, Q), 1, `${Q} must still be listed`);

    const id1 = await pub('events.org_123.unsub.a', { n: 1 });
    const id2 = await pub('events.org_123.unsub.a', { n: 2 });
    await c.waitEvent((e) => e.id === id2 && e.subscription === Q);
    const viaP = c.events((e) => (e.id === id1 || e.id === id2) && e.subscription === P);
    assert.deepEqual(viaP, [], 'no events via the unsubscribed pattern');
    assert.equal(c.events((e) => e.id === id1 && e.subscription === Q).length, 1);
  });

  it('event frames carry subscription, topic, id, ts and data verbatim', T, async (t) => {
    const P = 'events.org_123.rt.>';
    const c = await node.connect({ t, token: userToken });
    await c.subscribe(P);
    const payloads = [
      { nested: { a: [1, 2, { b: null }], e: {} }, s: 'héllo ✓ "quoted" \\ \n\t', n: -12.5, big: 9007199254740991, t: true },
      [1, 'two', null, [], {}],
      'just a string',
      42,
      false,
    ];
    const ids = [];
    for (const data of payloads) {
      const before = Date.now();
      const id = await pub('events.org_123.rt.x', data);
      const after = Date.now();
      ids.push(id);
      const ev = await c.waitEvent((e) => e.id === id);
      for (const k of ['data', 'id', 'subscription', 'topic', 'ts']) assert.ok(k in ev, `event frame lacks "${k}": ${JSON.stringify(ev)}`);
      assert.equal(ev.subscription, P);
      assert.equal(ev.topic, 'events.org_123.rt.x');
      assert.ok(Number.isInteger(ev.ts), `ts must be integer unix ms: ${ev.ts}`);
      assert.ok(ev.ts >= before - 1000 && ev.ts <= after + 1000, `ts ${ev.ts} not within publish window [${before}, ${after}]`);
      assert.deepEqual(ev.data, data);
    }
    assert.equal(new Set(ids).size, ids.length, `generated event ids must be unique: ${ids}`);
  });

  it('a client-supplied event id is returned by publish and carried by the event', T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    await c.subscribe('events.org_123.cid.*');
    const id = await pub('events.org_123.cid.x', { k: 'v' }, { id: 'evt-custom-0001' });
    assert.equal(id, 'evt-custom-0001');
    const ev = await c.waitEvent((e) => e.topic === 'events.org_123.cid.x');
    assert.equal(ev.id, 'evt-custom-0001');
  });

  it('data null round-trips', T, async (t) => {
    const c = await node.connect({ t, token: userToken });
    await c.subscribe('events.org_123.null.*');
    const id = await pub('events.org_123.null.x', null);
    const ev = await c.waitEvent((e) => e.id === id);
    assert.ok('data' in ev, `event must carry data: ${JSON.stringify(ev)}`);
    assert.equal(ev.data, null);
  });
});
