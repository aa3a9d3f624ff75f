// NATS bridge: --nats-pending-msgs limits a subscription's backlog; overflow is counted, not fatal.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitUntil } from './lib/node.mjs';
import { startNats, natsClient, startBridgedNode, metric, mpEncode, envelope, publishEnvelope, healthz } from './lib/nats.mjs';

const BURST = 20000;

describe('nats slow consumer', () => {
  it('a burst beyond --nats-pending-msgs is counted in switchyard_bus_slow_consumer_total; the node keeps delivering', { timeout: 120000 }, async (t) => {
    const ns = await startNats(t);
    const node = await startBridgedNode(t, ns, ['--nats-pending-msgs', '1', '--outbound-queue-limit', String(256 * 1024 * 1024)]);
    const P = 'events.org_123.sc.>';
    const c = await node.connect({ t, token: node.token({ sub: 'u_1', org: 'org_123' }) });
    await c.subscribe(P);
    const nc = await natsClient(t, ns, 'flood');
    assert.equal(await metric(node, 'switchyard_bus_slow_consumer_total'), 0, 'no slow consumer before the burst');

    const topic = 'events.org_123.sc.burst';
    for (let i = 0; i < BURST; i++) nc.publish(topic, mpEncode(envelope(topic, { i }, { id: `b-${i}` })));
    await nc.flush();

    let sc;
    await waitUntil(async () => (sc = await metric(node, 'switchyard_bus_slow_consumer_total')) > 0, {
      timeout: 20000,
      message: 'switchyard_bus_slow_consumer_total > 0 after a burst with --nats-pending-msgs 1',
    });

    // delivery continues once the backlog drains (a marker may itself be dropped while it is full: retry)
    let n = 0;
    await waitUntil(
      async () => {
        const id = `after-${n++}`;
        await publishEnvelope(nc, topic, envelope(topic, { after: true }, { id }));
        try {
          await c.waitEvent((e) => e.id.startsWith('after-'), { timeout: 1000, consume: false });
          return true;
        } catch {
          return false;
        }
      },
      { timeout: 30000, interval: 10, message: 'an event after the burst to be delivered' },
    );
    const burst = c.events((e) => e.id.startsWith('b-'));
    assert.ok(burst.length < BURST, `some of the ${BURST} burst messages should have been dropped (delivered ${burst.length}, slow_consumer_total ${sc})`);
    const ids = burst.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, 'no event delivered twice');
    // what was delivered is in publish order
    const idx = burst.map((e) => e.data.i);
    assert.ok(idx.every((v, k) => k === 0 || v > idx[k - 1]), 'burst events in order');
    assert.equal(c.closeInfo, null, 'client stays connected');
    assert.equal(node.exitInfo, null, 'node stays up');
    assert.equal((await healthz(node)).json.bus, 'up');
  });
});
