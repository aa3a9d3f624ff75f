// Three Switchyard nodes in separate processes, clustered over CAF's
// middleman on loopback and sharing one nats-server with JetStream: a room
// lives on its owner node whichever node a client talks to, a SIGKILLed
// owner's rooms move with their history, clients of the other nodes keep
// their connections, a notification reaches a user connected to another
// node once, and a restarted node rejoins.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startJetStream, freePort, FAST_RECONNECT } from './lib/nats.mjs';
import { execFileSync, spawnSync } from 'node:child_process';
import { api, BIN, startNode, waitUntil, sleep } from './lib/node.mjs';

const T = { timeout: 120000 };
const ORG = 'org_123';
const SECRET = 'cluster-e2e-secret-0123456789abcdef';
const topic = (event, room) => `events.${ORG}.conversations.conversation.${event}.${room}`;

/** Three nodes n1..n3, each seeded with the other two. */
async function startCluster(t, nats) {
  const ports = [await freePort(), await freePort(), await freePort()];
  const flagsOf = (i) => [
    '--nats', nats.url, ...FAST_RECONNECT,
    '--cluster-port', String(ports[i]), '--node-name', `n${i + 1}`,
    '--cluster-seeds', ports.filter((_, j) => j !== i).map((p) => `127.0.0.1:${p}`).join(','),
    '--cluster-timeout', '1s',
  ];
  const start = async (i) => {
    const node = await startNode(flagsOf(i), { secret: SECRET });
    t.after(() => node.stop());
    return node;
  };
  const nodes = [await start(0), await start(1), await start(2)];
  const root = nodes[0].token({ sub: 'root', org: ORG, admin: true, nodeAdmin: true, pub: [`events.${ORG}.>`] });
  return { nodes, start, root };
}

async function members(node, root, query = '') {
  const r = await api(node, 'GET', `/v1/cluster${query}`, root, undefined, 200);
  return r.json;
}

/** Waits until `node` sees exactly the members `alive` alive (itself included). */
async function waitMembers(node, root, alive, what) {
  return waitUntil(async () => {
    const view = await members(node, root);
    const live = view.members.filter((m) => m.state !== 'down').map((m) => m.name).sort();
    return JSON.stringify(live) === JSON.stringify([...alive].sort()) ? view : false;
  }, { timeout: 20000, message: what });
}

/** Waits until the history of `room`, read through `node`, satisfies `pred`. */
async function historyUntil(node, token, room, pred, what) {
  return waitUntil(async () => {
    const r = await api(node, 'GET', `/v1/rooms/${room}/messages`, token);
    return r.status === 200 && pred(r.json.messages) ? r.json.messages : false;
  }, { timeout: 20000, message: what });
}

describe('cluster flags', () => {
  it('refuses a cluster without NATS and bad addresses, naming the flag', () => {
    const run = (...flags) => spawnSync(BIN, ['--port', '0', '--jwt-secret', SECRET, ...flags], { encoding: 'utf8', timeout: 10000 });
    for (const [flags, message] of [
      [['--cluster-port', '7401'], /--cluster-port needs --nats/],
      [['--nats', 'nats://127.0.0.1:1', '--cluster-port', '7401', '--cluster-seeds', 'nohost'], /--cluster-seeds needs host:port/],
      [['--nats', 'nats://127.0.0.1:1', '--cluster-port', '7401', '--cluster-advertise', 'h:0'], /--cluster-advertise needs host:port/],
      [['--cluster-seeds', '127.0.0.1:7402'], /need --cluster-port/],
      [['--nats', 'nats://127.0.0.1:1', '--cluster-port', '7401', '--cluster-host', '0.0.0.0'], /--cluster-advertise needs the host:port other nodes reach/],
    ]) {
      const r = run(...flags);
      assert.equal(r.status, 2, `${flags.join(' ')}: status ${r.status}, stderr ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});

describe('a three-node cluster', () => {
  it('serves a room from its owner, moves it when the owner dies, and takes the node back', T, async (t) => {
    const nats = await startJetStream(t);
    const { nodes, start, root } = await startCluster(t, nats);
    for (const [i, node] of nodes.entries()) await waitMembers(node, root, ['n1', 'n2', 'n3'], `n${i + 1} to see all three`);
    const [n1, n2] = nodes;
    const alice = n1.token({ sub: 'alice', org: ORG });

    // A room whose owner is n3, created and used through n1.
    let room;
    await waitUntil(async () => {
      const r = await api(n1, 'POST', '/v1/rooms', alice, { name: 'ops', private: false });
      if (r.status !== 201) return false;
      const owner = (await members(n1, root, `?room=${r.json.id}`)).room_owner;
      if (owner === 'n3') room = r.json;
      return owner === 'n3';
    }, { timeout: 20000, message: 'a room placed on n3' });
    await api(n1, 'POST', `/v1/rooms/${room.id}/participants`, alice,
      { id: 'agent_echo', kind: 'agent', behavior: 'echo', auto_respond: 'always' }, 201);

    const c1 = await n1.connect({ t, token: alice });
    const c2 = await n2.connect({ t, token: n2.token({ sub: 'bob', org: ORG }) });
    for (const c of [c1, c2]) await c.subscribe(topic('*', room.id));
    await api(n1, 'POST', `/v1/rooms/${room.id}/messages`, alice, { text: 'hello cluster' }, 202);
    const firstReply = [];
    for (const c of [c1, c2])
      firstReply.push((await c.waitEvent((e) => e.topic === topic('message_stream', room.id) && e.data.done === true,
        { timeout: 20000, what: 'the end of the streamed reply' })).data.message_id);
    assert.equal(firstReply[0], firstReply[1]);
    await historyUntil(n2, alice, room.id, (m) => m.length === 2 && m[1].state === 'complete' && m[1].text === 'hello cluster', 'the echo through n2');
    const n3view = await members(nodes[2], root);
    assert.ok(n3view.members.find((m) => m.state === 'self').rooms_active >= 1, `n3 runs the room actor: ${JSON.stringify(n3view)}`);

    // The owner dies: n1 and n2 see it down, and the room goes on elsewhere.
    nodes[2].proc.kill('SIGKILL');
    await nodes[2].exited;
    await waitMembers(n1, root, ['n1', 'n2'], 'n1 to see n3 down');
    await waitMembers(n2, root, ['n1', 'n2'], 'n2 to see n3 down');
    const owner = (await members(n1, root, `?room=${room.id}`)).room_owner;
    assert.ok(owner === 'n1' || owner === 'n2', `new owner ${owner}`);
    await waitUntil(async () => (await api(n1, 'POST', `/v1/rooms/${room.id}/messages`, alice, { text: 'still here' })).status === 202,
      { timeout: 20000, message: 'a post after the owner died' });
    const after = await historyUntil(n2, alice, room.id, (m) => m.length === 4 && m[3].state === 'complete', 'the second echo');
    assert.deepEqual(after.map((m) => m.text), ['hello cluster', 'hello cluster', 'still here', 'still here']);
    for (const c of [c1, c2]) {
      await c.waitEvent((e) => e.topic === topic('message_stream', room.id) && e.data.done === true && e.data.message_id !== firstReply[0],
        { timeout: 20000, what: 'the second reply, streamed by the new owner' });
      assert.equal(c.closeInfo, null, 'clients of the surviving nodes keep their connections');
    }

    // n3 comes back under its name and rejoins.
    nodes[2] = await start(2);
    for (const [i, node] of nodes.entries()) await waitMembers(node, root, ['n1', 'n2', 'n3'], `n${i + 1} to see n3 back`);
  });

  it('delivers a notification once to a user connected to another node', T, async (t) => {
    const nats = await startJetStream(t);
    const { nodes, root } = await startCluster(t, nats);
    for (const [i, node] of nodes.entries()) await waitMembers(node, root, ['n1', 'n2', 'n3'], `n${i + 1} to see all three`);
    const [n1, n2] = nodes;
    const rule = {
      id: 'alerts',
      topic: `events.${ORG}.alerts.alert.fired.*`,
      recipients: { fields: ['data.on_call'] },
      title: 'Alert {{data.name}}',
      body: 'fired',
      priority: 'normal',
    };
    await waitUntil(async () => (await api(n1, 'POST', '/v1/notification-rules', root, rule)).status === 201,
      { timeout: 20000, message: 'the rule to be stored' });
    // Every node reads the rules again within 10 s; wait until each has its rule actor.
    for (const node of nodes)
      await waitUntil(async () => (await node.metrics()).get('switchyard_rule_actors') >= 1, { timeout: 20000, message: 'a rule actor on every node' });
    const bob = await n2.connect({ t, token: n2.token({ sub: 'bob', org: ORG }) });
    await n1.publishOk(root, `events.${ORG}.alerts.alert.fired.a1`, { name: 'disk', on_call: 'bob' });
    const frame = await bob.waitFor((f) => f.type === 'notification', { timeout: 20000, what: 'the notification frame' });
    assert.equal(frame.title, 'Alert disk');
    bob.send({ type: 'ack', id: frame.id });
    // Three rule actors saw the event; the user still gets one frame.
    await sleep(1500);
    assert.equal(bob.history.filter((f) => f.type === 'notification').length, 1, 'one notification frame');
    const inbox = await waitUntil(async () => {
      const r = await api(n1, 'GET', '/v1/notifications', n1.token({ sub: 'bob', org: ORG }), undefined, 200);
      const x = r.json.notifications.find((n) => n.id === frame.id);
      return x && x.websocket.state === 'sent' ? r.json.notifications : false;
    }, { timeout: 20000, message: 'the notification in the inbox' });
    assert.equal(inbox.length, 1);
  });
});

/** A CA and, per name, a certificate it signed (PEM files in `dir`). */
function makeCa(dir, caName, names) {
  const ssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ca = path.join(dir, `${caName}.pem`);
  const caKey = path.join(dir, `${caName}-key.pem`);
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${caName}`, '-days', '1', '-keyout', caKey, '-out', ca);
  const out = { ca };
  for (const name of names) {
    const key = path.join(dir, `${name}-key.pem`);
    const csr = path.join(dir, `${name}.csr`);
    const cert = path.join(dir, `${name}.pem`);
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', csr);
    ssl('x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-days', '1', '-out', cert);
    out[name] = ['--cluster-tls-cert', cert, '--cluster-tls-key', key, '--cluster-tls-ca', ca];
  }
  return out;
}

describe('a cluster with mutual TLS', () => {
  it('admits members with a certificate of its CA and no one else', T, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-cluster-tls-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const ours = makeCa(dir, 'cluster-ca', ['n1', 'n2']);
    const theirs = makeCa(dir, 'other-ca', ['intruder']);
    const nats = await startJetStream(t);
    const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
    // CAF 0.17.6's OpenSSL module leaves a TLS context unfreed in a node
    // whose peers' handshakes fail (docs/security.md, "Known limits"), which
    // this test makes happen on purpose: LeakSanitizer is off for these
    // nodes only.
    const env = process.env.ASAN_OPTIONS ? { ASAN_OPTIONS: process.env.ASAN_OPTIONS.replace('detect_leaks=1', 'detect_leaks=0') } : {};
    const start = async (i, name, tls) => {
      const node = await startNode([
        '--nats', nats.url, '--cluster-port', String(ports[i]), '--node-name', name,
        '--cluster-seeds', ports.filter((_, j) => j !== i).map((p) => `127.0.0.1:${p}`).join(','),
        '--cluster-timeout', '1s', ...tls,
      ], { secret: SECRET, env });
      t.after(() => node.stop());
      return node;
    };
    const n1 = await start(0, 'n1', ours.n1);
    assert.match(n1.stderr, /mutual TLS/);
    const n2 = await start(1, 'n2', ours.n2);
    const intruder = await start(2, 'intruder', theirs.intruder);
    const plain = await start(3, 'plain', []);
    const root = n1.token({ sub: 'root', org: ORG, nodeAdmin: true });
    await waitMembers(n1, root, ['n1', 'n2'], 'n1 and n2 to meet over TLS');
    await waitMembers(n2, root, ['n1', 'n2'], 'n2 to see n1');
    // Give the others time to try (they retry every 250 ms): still out.
    await sleep(2000);
    for (const node of [n1, n2]) {
      const names = (await members(node, root)).members.map((m) => m.name).sort();
      assert.deepEqual(names, ['n1', 'n2'], 'neither the other CA\'s node nor a plain one got in');
    }
    for (const node of [intruder, plain])
      assert.deepEqual((await members(node, root)).members.map((m) => m.name), [node === plain ? 'plain' : 'intruder']);
  });
});
