// NATS bridge: a node holds one NATS subscription per locally subscribed pattern, by interest.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitUntil } from './lib/node.mjs';
import { startNats, natsClient, publishEnvelope, envelope, startBridgedNode, metric } from './lib/nats.mjs';

const T = { timeout: 60000 };

describe('nats interest', () => {
  it('NATS subscriptions follow local subscribe/unsubscribe/disconnect; one per pattern per node', T, async (t) => {
    const ns = await startNats(t);
    const node = await startBridgedNode(t, ns);
    const nc = await natsClient(t, ns, 'publisher');
    const P1 = 'events.org_123.in.*.x';
    const P2 = 'events.org_123.in.>';
    const P3 = 'events.org_123.in.only.c';

    const subjects = () => ns.nodeSubjects();
    const count = (list, s) => list.filter((x) => x === s).length;
    /** Polls until the node's NATS subscriptions equal `want` (sorted multiset). */
    const waitSubjects = async (want, what) => {
      let last;
      try {
        await waitUntil(
          async () => {
            last = await subjects();
            return JSON.stringify(last) === JSON.stringify([...want].sort());
          },
          { timeout: 10000, interval: 100, message: what },
        );
      } catch (e) {
        e.message += `; node NATS subscriptions: ${JSON.stringify(last)}, want ${JSON.stringify([...want].sort())}`;
        throw e;
      }
    };
    const waitInterestMetric = async (n) => {
      let last;
      try {
        await waitUntil(async () => (last = await metric(node, 'switchyard_bus_interest')) === n, { timeout: 10000, message: `switchyard_bus_interest ${n}` });
      } catch (e) {
        e.message += `; last value ${last}`;
        throw e;
      }
    };

    // the node is connected to NATS and holds no interest yet
    await waitUntil(async () => (await ns.nodeConnections()).length === 1, { timeout: 10000, message: 'the node to connect to nats-server' });
    assert.deepEqual(await subjects(), [], 'no subscriptions before any client subscribes');
    await waitInterestMetric(0);

    const a = await node.connect({ t, token: node.token({ sub: 'u_a', org: 'org_123' }) });
    const b = await node.connect({ t, token: node.token({ sub: 'u_b', org: 'org_123' }) });

    // `ok` is sent only after the NATS SUB is confirmed: visible on the server right away
    await a.subscribe(P1);
    assert.deepEqual(await subjects(), [P1], 'after A subscribes P1 (checked right after ok)');
    await b.subscribe(P1);
    await a.subscribe(P2);
    assert.deepEqual(await subjects(), [P1, P2].sort(), 'two local subscribers of P1 make one NATS subscription');
    await b.subscribe(P3);
    assert.deepEqual(await subjects(), [P1, P2, P3].sort(), 'after B subscribes P3');
    await a.subscribe(P1); // idempotent re-subscribe: still one
    assert.equal(count(await subjects(), P1), 1, 're-subscribing does not add a NATS subscription');
    await waitInterestMetric(3);

    // both subscribers of P1 get events through the single NATS subscription
    const topic = 'events.org_123.in.q.x';
    await publishEnvelope(nc, topic, envelope(topic, { k: 1 }, { id: 'in-1' }));
    await a.waitState((cl) => cl.events((e) => e.id === 'in-1').length >= 2, { what: 'A: in-1 via P1 and P2' });
    await b.waitEvent((e) => e.id === 'in-1' && e.subscription === P1, { what: 'B: in-1 via P1' });

    // B unsubscribes P1: A still holds it, so the NATS subscription stays and still delivers
    await b.unsubscribe(P1);
    const topic2 = 'events.org_123.in.r.x';
    await publishEnvelope(nc, topic2, envelope(topic2, { k: 2 }, { id: 'in-2' }));
    await a.waitEvent((e) => e.id === 'in-2' && e.subscription === P1, { what: 'A: in-2 via P1 after B left P1' });
    assert.deepEqual(await subjects(), [P1, P2, P3].sort(), 'P1 stays while A still holds it');

    // B unsubscribes P3 (its last holder): gone from NATS
    await b.unsubscribe(P3);
    await waitSubjects([P1, P2], 'P3 to disappear after its only subscriber unsubscribed');
    await waitInterestMetric(2);

    // B subscribes P1 again, then A unsubscribes P1: B still holds it
    await b.subscribe(P1);
    await a.unsubscribe(P1);
    assert.deepEqual(await subjects(), [P1, P2].sort(), 'P1 stays while B holds it');

    // B disconnects: its P1 interest goes away
    b.terminate();
    await b.waitClose();
    await waitSubjects([P2], 'P1 to disappear after its last subscriber disconnected');

    // A disconnects: no interest left
    a.terminate();
    await a.waitClose();
    await waitSubjects([], 'P2 to disappear after A disconnected');
    await waitInterestMetric(0);

    // the node is still usable: a new subscriber re-creates the interest and receives
    const c = await node.connect({ t, token: node.token({ sub: 'u_c', org: 'org_123' }) });
    await c.subscribe(P1);
    assert.deepEqual(await subjects(), [P1], 'P1 re-subscribed after all interest was gone');
    await publishEnvelope(nc, topic, envelope(topic, { k: 3 }, { id: 'in-3' }));
    const ev = await c.waitEvent((e) => e.id === 'in-3');
    assert.equal(ev.subscription, P1);
  });
});
