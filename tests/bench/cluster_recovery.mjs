// Node-loss time to recovery in a 3-node cluster on loopback: a room owned
// by n3 is in use through n1; n3 is SIGKILLed; the time from the kill until
// a post through n1 is accepted again (the room served by its next owner,
// rebuilt from JetStream) and until its echo reply has completed.
//
//   node tests/bench/cluster_recovery.mjs [--rounds 5] [--timeout 3s]
//     [--switchyard build/switchyard]
//
// Prints one line per round and the medians with their min-max; never
// asserts a speed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    timeout: { type: 'string', default: '3s' },
    switchyard: { type: 'string' },
  },
});
if (opt.switchyard) process.env.SWITCHYARD_BIN = path.resolve(opt.switchyard);
// After the line above: the library reads SWITCHYARD_BIN when it loads.
const { NatsServer, freePort } = await import('../e2e/lib/nats.mjs');
const { startNode } = await import('../e2e/lib/node.mjs');
const ORG = 'org_bench';
const SECRET = 'cluster-bench-secret-0123456789abcdef';

async function until(fn, what, timeout = 30000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function round() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-bench-js-'));
  const nats = await NatsServer.start({ args: ['-js', '-sd', dir] });
  const ports = [await freePort(), await freePort(), await freePort()];
  const nodes = [];
  try {
    for (let i = 0; i < 3; i++)
      nodes.push(await startNode([
        '--nats', nats.url, '--cluster-port', String(ports[i]), '--node-name', `n${i + 1}`,
        '--cluster-seeds', ports.filter((_, j) => j !== i).map((p) => `127.0.0.1:${p}`).join(','),
        '--cluster-timeout', opt.timeout, '--log-level', 'warn',
      ], { secret: SECRET }));
    const [n1] = nodes;
    const root = n1.token({ sub: 'root', org: ORG, nodeAdmin: true });
    const alice = n1.token({ sub: 'alice', org: ORG });
    const live = async (node) => (await node.http('GET', '/v1/cluster', { token: root })).json?.members?.filter((m) => m.state !== 'down').length;
    for (const node of nodes) await until(async () => (await live(node)) === 3, 'three members');
    let room;
    await until(async () => {
      const r = await n1.http('POST', '/v1/rooms', { token: alice, body: { name: 'bench', private: false } });
      if (r.status !== 201) return false;
      const owner = (await n1.http('GET', `/v1/cluster?room=${r.json.id}`, { token: root })).json.room_owner;
      room = r.json;
      return owner === 'n3';
    }, 'a room on n3');
    await n1.http('POST', `/v1/rooms/${room.id}/participants`, { token: alice, body: { id: 'agent_echo', kind: 'agent', behavior: 'echo', auto_respond: 'always' } });
    await n1.http('POST', `/v1/rooms/${room.id}/messages`, { token: alice, body: { text: 'warm' } });
    const done = async (n) => {
      const r = await n1.http('GET', `/v1/rooms/${room.id}/messages`, { token: alice });
      return r.status === 200 && r.json.messages.length === n && r.json.messages[n - 1].state === 'complete';
    };
    await until(() => done(2), 'the first echo');
    const killed = Date.now();
    nodes[2].proc.kill('SIGKILL');
    await until(async () => (await n1.http('POST', `/v1/rooms/${room.id}/messages`, { token: alice, body: { text: 'again' } })).status === 202, 'a post after the kill');
    const accepted = Date.now() - killed;
    await until(() => done(4), 'the second echo');
    const replied = Date.now() - killed;
    return { accepted, replied };
  } finally {
    for (const node of nodes) await node.stop();
    await nats.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (let i = 0; i < Number(opt.rounds); i++) {
  const r = await round();
  rows.push(r);
  console.log(`round ${i + 1}: post accepted ${r.accepted} ms, reply complete ${r.replied} ms after the kill`);
}
for (const key of ['accepted', 'replied']) {
  const xs = rows.map((r) => r[key]);
  console.log(`${key}: median ${median(xs)} ms [${Math.min(...xs)}-${Math.max(...xs)}] over ${xs.length} rounds (cluster timeout ${opt.timeout})`);
}
