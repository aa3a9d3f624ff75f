// A network partition between cluster members, in network namespaces: node
// n3 runs in a namespace of its own, joined to the host by a veth pair; the
// test cuts the link, the other members see n3 down within the cluster
// timeout, and see it alive again once the link is back. Needs root and
// `ip netns` (iproute2); skipped with a message where the namespace cannot be
// made.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { startNats, freePort } from './lib/nats.mjs';
import { BIN, Node, startNode, waitUntil } from './lib/node.mjs';

const SECRET = 'partition-e2e-secret-0123456789abcdef';
const NS = `sy-part-${process.pid}`;
const HOST_IF = `syh${process.pid % 100000}`;
const NS_IF = `syn${process.pid % 100000}`;
const HOST_IP = '10.231.0.1';
const NS_IP = '10.231.0.2';

const ip = (...args) => spawnSync('ip', args, { encoding: 'utf8' });

/** Makes the namespace and the link; returns why not, or null. */
function makeNetwork() {
  const steps = [
    ['netns', 'add', NS],
    ['link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF],
    ['link', 'set', NS_IF, 'netns', NS],
    ['addr', 'add', `${HOST_IP}/24`, 'dev', HOST_IF],
    ['link', 'set', HOST_IF, 'up'],
    ['netns', 'exec', NS, 'ip', 'addr', 'add', `${NS_IP}/24`, 'dev', NS_IF],
    ['netns', 'exec', NS, 'ip', 'link', 'set', NS_IF, 'up'],
    ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up'],
  ];
  for (const step of steps) {
    const r = ip(...step);
    if (r.error || r.status !== 0) {
      removeNetwork();
      return `ip ${step.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`;
    }
  }
  return null;
}

function removeNetwork() {
  ip('link', 'del', HOST_IF);
  ip('netns', 'del', NS);
}

const unavailable = makeNetwork();
if (unavailable) console.log(`# skipping the partition test: cannot make a network namespace (${unavailable})`);
else removeNetwork();

async function members(node, root) {
  const r = await node.http('GET', '/v1/cluster', { token: root });
  assert.equal(r.status, 200, `GET /v1/cluster: ${r.status} ${r.text}`);
  return r.json;
}

async function waitAlive(node, root, names, what, timeout = 20000) {
  return waitUntil(async () => {
    const view = await members(node, root);
    const live = view.members.filter((m) => m.state !== 'down').map((m) => m.name).sort();
    return JSON.stringify(live) === JSON.stringify([...names].sort()) ? view : false;
  }, { timeout, message: what });
}

describe('a partitioned cluster member', { skip: unavailable ? `no network namespace: ${unavailable}` : false }, () => {
  it('is seen down within the timeout and rejoins when the link is back', { timeout: 120000 }, async (t) => {
    assert.equal(makeNetwork(), null);
    t.after(removeNetwork);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-js-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const nats = await startNats(t, { args: ['-js', '-sd', dir, '-a', '0.0.0.0'] });
    const ports = [await freePort(), await freePort(), await freePort()];
    const addr = [`${HOST_IP}:${ports[0]}`, `${HOST_IP}:${ports[1]}`, `${NS_IP}:${ports[2]}`];
    const flags = (i, natsHost) => [
      '--nats', `nats://${natsHost}:${nats.port}`,
      '--cluster-host', addr[i].split(':')[0], '--cluster-port', String(ports[i]), '--node-name', `n${i + 1}`,
      '--cluster-seeds', addr.filter((_, j) => j !== i).join(','), '--cluster-timeout', '1s',
    ];
    const n1 = await startNode(flags(0, '127.0.0.1'), { secret: SECRET });
    t.after(() => n1.stop());
    const n2 = await startNode(flags(1, '127.0.0.1'), { secret: SECRET });
    t.after(() => n2.stop());
    const args3 = ['--host', '127.0.0.1', '--port', '0', '--jwt-secret', SECRET, ...flags(2, HOST_IP)];
    const n3 = await new Node(spawn('ip', ['netns', 'exec', NS, BIN, ...args3], { stdio: ['ignore', 'pipe', 'pipe'] }), SECRET, args3)._ready(15000);
    t.after(() => n3.stop());
    const root = n1.token({ sub: 'root', org: 'org_1', nodeAdmin: true });
    for (const node of [n1, n2]) await waitAlive(node, root, ['n1', 'n2', 'n3'], 'all three alive');

    // Cut n3 off: no reset reaches anyone, only the pings go unanswered.
    assert.equal(ip('link', 'set', HOST_IF, 'down').status, 0);
    const cut = Date.now();
    for (const node of [n1, n2]) await waitAlive(node, root, ['n1', 'n2'], 'n3 down after the cut', 10000);
    const detected = Date.now() - cut;
    // The timeout is 1 s, pings go every 250 ms: well within 5 s.
    assert.ok(detected < 5000, `detected after ${detected} ms`);
    const view = await members(n1, root);
    assert.equal(view.members.find((m) => m.name === 'n3').state, 'down');

    // The link is back: n3 rejoins without a restart.
    assert.equal(ip('link', 'set', HOST_IF, 'up').status, 0);
    for (const node of [n1, n2]) await waitAlive(node, root, ['n1', 'n2', 'n3'], 'n3 back after the link');
    assert.equal(n3.exitInfo, null, 'n3 kept running through the partition');
  });
});
