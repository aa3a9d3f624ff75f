// Slow consumers: a client that stops reading is closed with 4409 while others keep receiving in order.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, waitUntil } from './lib/node.mjs';

const QUEUE_LIMIT = 65536;
const MIN_EVENTS = 400;
// Kernel socket buffers on loopback can absorb a few MiB before the server's own queue grows,
// so keep publishing (up to MAX_EVENTS) until the node reports the 4409 close.
const MAX_EVENTS = 4000;
const PAD = 'x'.repeat(8000);

describe('slow consumer', () => {
  let node, userToken, adminToken, pubToken;
  before(async () => {
    node = await startNode(['--outbound-queue-limit', String(QUEUE_LIMIT)]);
    userToken = node.token({ sub: 'u_1', org: 'org_123' });
    adminToken = node.token({ sub: 'u_admin', org: 'org_123', admin: true });
    pubToken = node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] });
  });
  after(async () => {
    await node?.stop();
  });

  it('a paused client is closed with 4409; a healthy subscriber receives every event in order', { timeout: 180000 }, async (t) => {
    const P = 'events.org_123.slow.>';
    const topic = 'events.org_123.slow.feed';
    const healthy = await node.connect({ t, token: userToken });
    const slow = await node.connect({ t, token: node.token({ sub: 'u_slow', org: 'org_123' }) });
    await healthy.subscribe(P);
    await slow.subscribe(P);
    await waitUntil(async () => (await node.subscribers(adminToken, P)) === 2, { message: `${P} to have 2 subscribers` });
    const slowSession = slow.welcome.session;
    const closes4409Before = (await node.metrics()).get('switchyard_closes_total', { code: '4409' }) ?? 0;

    slow.ws._socket.pause();

    const slowGone = async () => {
      const m = await node.metrics();
      if ((m.get('switchyard_closes_total', { code: '4409' }) ?? 0) >= closes4409Before + 1) return true;
      return !(await node.sessions(adminToken)).some((s) => s.session === slowSession);
    };

    const ids = [];
    const publishNext = async () => ids.push(await node.publishOk(pubToken, topic, { seq: ids.length, pad: PAD }));
    let gone = false;
    while (!gone && ids.length < MAX_EVENTS) {
      await publishNext();
      if (ids.length % 25 === 0) gone = await slowGone();
    }
    if (!gone) gone = await waitUntil(slowGone, { timeout: 10000, message: 'the paused client to be dropped' }).catch(() => false);
    assert.ok(gone, `the paused client was not closed after ${ids.length} events of ~8 KiB (${((ids.length * 8000) / 1048576).toFixed(1)} MiB) with --outbound-queue-limit ${QUEUE_LIMIT}`);

    // the paused client reads again right away and must see the 4409 close
    const droppedAfter = ids.length;
    slow.ws._socket.resume();
    const slowClosed = slow.waitClose(30000);
    slowClosed.catch(() => {});

    // keep publishing up to MIN_EVENTS: the healthy subscriber is unaffected
    while (ids.length < MIN_EVENTS) await publishNext();

    // every event reaches the healthy subscriber, in publish order
    await healthy.waitState((c) => c.events((e) => e.topic === topic).length >= ids.length || c.closeInfo, {
      timeout: 60000,
      what: `${ids.length} events at the healthy subscriber`,
    });
    assert.equal(healthy.closeInfo, null, `healthy subscriber was closed: ${JSON.stringify(healthy.closeInfo)}`);
    const got = healthy.events((e) => e.topic === topic);
    assert.equal(got.length, ids.length, 'healthy subscriber event count');
    const outOfOrder = got.findIndex((e, i) => e.id !== ids[i] || e.data?.seq !== i);
    assert.equal(outOfOrder, -1, `healthy subscriber: event #${outOfOrder} is seq ${got[outOfOrder]?.data?.seq} id ${got[outOfOrder]?.id}, expected seq ${outOfOrder} id ${ids[outOfOrder]}`);

    const close = await slowClosed;
    const slowCount = slow.events((e) => e.topic === topic).length;
    assert.equal(
      close.code,
      4409,
      `slow client close code (reason ${JSON.stringify(close.reason)}); it read ${slowCount} events after resuming, the drop was seen after ${droppedAfter} publishes; client errors: ${JSON.stringify(slow.errors.map((e) => e.code ?? e.message))}`,
    );
    assert.ok(slowCount < ids.length, 'the slow client cannot have received everything');

    await waitUntil(async () => (await node.subscribers(adminToken, P)) === 1, { message: `${P} to drop to 1 subscriber` });
    const m = await node.metrics();
    assert.ok((m.get('switchyard_closes_total', { code: '4409' }) ?? 0) >= closes4409Before + 1, 'switchyard_closes_total{code="4409"} increased');
    await healthy.assertAlive('events.org_123.slow.after');
  });
});
