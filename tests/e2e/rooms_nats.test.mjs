// Rooms on NATS with JetStream: rooms, participants and histories survive a
// restart of the node (and a reply cut short by one is kept as failed), and
// an external agent streams a reply into a room over NATS alone, with the
// example client of docs/examples.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startJetStream, startBridgedNode, FAST_RECONNECT } from './lib/nats.mjs';
import { api, startNode, waitUntil } from './lib/node.mjs';

const T = { timeout: 90000 };
const ORG = 'org_123';
const here = path.dirname(fileURLToPath(import.meta.url));
const topic = (event, room) => `events.${ORG}.conversations.conversation.${event}.${room}`;

/** Creates a room, waiting out the 503 of a node still loading its rooms from JetStream. */
async function createRoom(node, token, name) {
  const r = await waitUntil(async () => {
    const x = await api(node, 'POST', '/v1/rooms', token, { name });
    return x.status === 503 ? false : x;
  }, { timeout: 20000, message: 'the rooms to load' });
  assert.equal(r.status, 201, `POST /v1/rooms: ${r.status} ${r.text}`);
  return r.json;
}

/** Waits until the history of `room` satisfies `pred`; returns it. */
async function historyUntil(node, token, room, pred, what) {
  const deadline = Date.now() + 20000;
  let last;
  while (Date.now() < deadline) {
    last = await api(node, 'GET', `/v1/rooms/${room}/messages`, token);
    if (last.status === 200 && pred(last.json.messages)) return last.json.messages;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}: last history ${last?.status} ${last?.text}`);
}

describe('rooms on NATS JetStream', () => {
  it('keeps rooms, participants and history across a node restart', T, async (t) => {
    const ns = await startJetStream(t);
    let node = await startBridgedNode(t, ns, ['--dev']);
    const alice = node.token({ sub: 'alice', org: ORG });
    assert.match(node.stderr, /rooms and notifications stored in NATS JetStream/);
    const room = await createRoom(node, alice, 'durable');
    await api(node, 'POST', `/v1/rooms/${room.id}/participants`, alice, { id: 'bob', kind: 'user' }, 201);
    await api(node, 'POST', `/v1/rooms/${room.id}/participants`, alice,
      { id: 'agent_echo', kind: 'agent', behavior: 'echo', auto_respond: 'always' }, 201);
    await api(node, 'POST', `/v1/rooms/${room.id}/messages`, alice, { text: 'remember me' }, 202);
    const before = await historyUntil(node, alice, room.id, (m) => m.length === 2 && m[1].state === 'complete', 'the echo');
    // A long, slow reply, cut short by a restart.
    await api(node, 'POST', `/v1/rooms/${room.id}/participants`, alice,
      { id: 'agent_slow', kind: 'agent', behavior: 'echo', auto_respond: 'mention', config: { delay_ms: 200 } }, 201);
    await api(node, 'POST', `/v1/rooms/${room.id}/messages`, alice,
      { text: `@agent_slow ${Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ')}` }, 202);
    await historyUntil(node, alice, room.id, (m) => m.some((x) => x.author === 'agent_slow' && x.state === 'streaming'), 'the slow reply streaming');
    await node.stop();

    node = await startNode(['--nats', ns.url, ...FAST_RECONNECT, '--dev'], { secret: node.secret });
    t.after(() => node.stop());
    // 503 while the node loads the rooms from JetStream: retry, as a client would.
    let got;
    const deadline = Date.now() + 15000;
    do {
      got = await api(node, 'GET', `/v1/rooms/${room.id}`, alice);
      if (got.status === 503) await new Promise((r) => setTimeout(r, 100));
    } while (got.status === 503 && Date.now() < deadline);
    assert.equal(got.status, 200, got.text);
    assert.deepEqual(got.json.participants.map((p) => p.id), ['alice', 'bob', 'agent_echo', 'agent_slow']);
    assert.equal(got.json.name, 'durable');
    const list = await api(node, 'GET', '/v1/rooms', alice, undefined, 200);
    assert.ok(list.json.rooms.some((r) => r.id === room.id));
    const after = await historyUntil(node, alice, room.id, (m) => m.length >= 4, 'the history after the restart');
    assert.deepEqual(after.slice(0, 2), before);
    const cut = after.find((x) => x.author === 'agent_slow');
    assert.equal(cut.state, 'failed', JSON.stringify(cut));
    assert.match(cut.reason, /stopped during the reply/);
    // Numbering goes on where it stopped; the agents run again.
    const next = (await api(node, 'POST', `/v1/rooms/${room.id}/messages`, alice, { text: 'still here' }, 202)).json;
    assert.ok(next.seq > Math.max(...after.map((m) => m.seq)), `seq ${next.seq} after ${JSON.stringify(after.map((m) => m.seq))}`);
    await historyUntil(node, alice, room.id, (m) => m.some((x) => x.author === 'agent_echo' && x.text === 'still here' && x.state === 'complete'), 'the echo after the restart');
  });

  it('an external agent streams a reply over NATS', T, async (t) => {
    const ns = await startJetStream(t);
    const node = await startBridgedNode(t, ns, ['--dev']);
    const alice = node.token({ sub: 'alice', org: ORG });
    const room = await createRoom(node, alice, 'outside');
    await api(node, 'POST', `/v1/rooms/${room.id}/participants`, alice,
      { id: 'agent_ext', kind: 'agent', behavior: 'external', auto_respond: 'always' }, 201);
    const agent = spawn(process.execPath, [
      path.join(here, '../../docs/examples/external-agent.cjs'),
      '--nats', ns.url, '--org', ORG, '--room', room.id, '--agent', 'agent_ext',
    ], { env: { ...process.env, NODE_PATH: path.join(here, 'node_modules') }, stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => agent.kill());
    let agentErr = '';
    agent.stderr.on('data', (d) => (agentErr += d));
    await new Promise((resolve, reject) => {
      agent.stdout.on('data', (d) => String(d).includes('ready') && resolve());
      agent.on('exit', (code) => reject(new Error(`agent exited ${code}: ${agentErr}`)));
    });
    const c = await node.connect({ t, token: alice });
    await c.subscribe(topic('*', room.id));
    await api(node, 'POST', `/v1/rooms/${room.id}/messages`, alice, { text: 'hello out there' }, 202);
    const reply = await c.waitEvent((e) => e.topic.includes('.message_posted.') && e.data.author === 'agent_ext', {
      what: `the external reply (agent stderr: ${agentErr})`, timeout: 20000,
    });
    assert.equal(reply.data.text, 'you said: hello out there');
    assert.equal(reply.data.state, 'complete');
    const tokens = c.events((e) => e.topic.includes('.message_stream.') && e.data.message_id === reply.data.message_id).map((e) => e.data);
    assert.deepEqual(tokens.map((x) => x.index), tokens.map((_, i) => i));
    assert.equal(tokens.map((x) => x.token).join(''), 'you said: hello out there');
    assert.equal(tokens.at(-1).done, true);
    // A start for an agent that is not in the room is refused.
    const { connect, StringCodec } = await import('nats');
    const nc = await connect({ servers: ns.url });
    t.after(() => nc.close());
    const sc = StringCodec();
    const r = await nc.request('switchyard.agents.start', sc.encode(JSON.stringify({ org: ORG, room: room.id, agent: 'agent_nope' })), { timeout: 5000 });
    const refused = JSON.parse(sc.decode(r.data));
    assert.equal(refused.ok, false);
    assert.equal(refused.code, 'forbidden');
  });
});
