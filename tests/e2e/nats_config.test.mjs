// NATS bridge flags: server lists, token and user/password authentication.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startNats, natsClient, publishEnvelope, envelope, startBridgedNode, waitBus, freePort } from './lib/nats.mjs';

const T = { timeout: 60000 };

/** Subscribes, publishes on NATS (as `ncOpts` client) and expects delivery. */
async function assertBridged(t, node, ns, ncOpts = {}, tag = 'x') {
  const P = `events.org_123.cfg${tag}.*`;
  const c = await node.connect({ t, token: node.token({ sub: 'u_1', org: 'org_123' }) });
  await c.subscribe(P);
  const nc = await natsClient(t, ns, `pub-${tag}`, ncOpts);
  const topic = `events.org_123.cfg${tag}.a`;
  await publishEnvelope(nc, topic, envelope(topic, { tag }, { id: `cfg-${tag}` }));
  const ev = await c.waitEvent((e) => e.id === `cfg-${tag}`);
  assert.equal(ev.subscription, P);
  assert.deepEqual(ev.data, { tag });
}

describe('nats config', () => {
  it('--nats with a comma-separated server list reaches the live server', T, async (t) => {
    const ns = await startNats(t);
    const dead = `nats://127.0.0.1:${await freePort()}`;
    const node = await startBridgedNode(t, `${dead},${ns.url}`);
    await waitBus(node, 'up', { timeout: 20000 });
    await assertBridged(t, node, ns, {}, 'list');
  });

  it('--nats-token authenticates', T, async (t) => {
    const ns = await startNats(t, { args: ['--auth', 's3cr3t-token'] });
    const good = await startBridgedNode(t, ns, ['--nats-token', 's3cr3t-token']);
    await waitBus(good, 'up', { timeout: 20000 });
    await assertBridged(t, good, ns, { token: 's3cr3t-token' }, 'tok');
  });

  it('--nats-user/--nats-password authenticate', T, async (t) => {
    const ns = await startNats(t, { args: ['--user', 'sy', '--pass', 'pw-123'] });
    const node = await startBridgedNode(t, ns, ['--nats-user', 'sy', '--nats-password', 'pw-123']);
    await waitBus(node, 'up', { timeout: 20000 });
    await assertBridged(t, node, ns, { user: 'sy', pass: 'pw-123' }, 'up');
  });
});
