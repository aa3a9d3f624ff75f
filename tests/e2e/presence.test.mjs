// Presence end to end: the real binary on nats-server with JetStream (and
// --history, so presence events take the plain NATS path beside the
// republished events), real WebSocket clients connecting, leaving, dropping
// their TCP connection and going silent until the heartbeat closes them;
// then two clustered nodes counting a user once across both.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startJetStream, freePort, FAST_RECONNECT } from './lib/nats.mjs';
import { api, startNode, waitUntil } from './lib/node.mjs';

const T = { timeout: 90000 };
const ORG = 'org_123';
const TOPIC = `events.${ORG}.docs.doc.edited.d1`;
const PRESENCE = `presence.${ORG}.${TOPIC}`;
const SECRET = 'presence-e2e-secret-0123456789abcdef';

async function presenceOf(node, token, query) {
  const r = await api(node, 'GET', `/v1/presence?${query}`, token);
  assert.equal(r.status, 200, `GET /v1/presence?${query}: ${r.status} ${r.text}`);
  return r.json;
}

/** Waits until the presence of TOPIC on `node` matches users and sessions. */
async function presenceUntil(node, token, users, sessions, query = `topic=${TOPIC}`) {
  return waitUntil(async () => {
    const p = await presenceOf(node, token, query);
    return p.users === users && p.sessions === sessions ? p : false;
  }, { timeout: 15000, message: `presence of ${query} to be ${users} users / ${sessions} sessions` });
}

/** The presence events `c` got so far, as `action:user`. */
const actions = (c) => c.events((e) => e.topic === PRESENCE).map((e) => `${e.data.action}:${e.data.user}`);

describe('presence', () => {
  it('joins and leaves under connect and disconnect churn, counted once per user', T, async (t) => {
    const nats = await startJetStream(t);
    const node = await startNode(['--nats', nats.url, ...FAST_RECONNECT, '--history', '--heartbeat-interval', '200ms', '--heartbeat-timeout', '300ms'], { secret: SECRET });
    t.after(() => node.stop());
    const admin = node.token({ sub: 'root', org: ORG, admin: true });
    const watcher = await node.connect({ t, token: node.token({ sub: 'watcher', org: ORG }) });
    await watcher.subscribe(PRESENCE);
    // Ten users with two sessions each; the first of each pair answers
    // pings only while `answering` holds.
    const users = Array.from({ length: 10 }, (_, i) => `u${i}`);
    const clients = {};
    const answering = new Set(users);
    for (const u of users) {
      const token = node.token({ sub: u, org: ORG });
      const silent = await node.connect({ t, token, autoPong: false });
      silent.ws.on('ping', (d) => {
        if (answering.has(u)) silent.ws.pong(d);
      });
      const other = await node.connect({ t, token });
      await silent.subscribe(TOPIC);
      await other.subscribe(TOPIC);
      clients[u] = [silent, other];
    }
    let p = await presenceUntil(node, admin, 10, 20);
    assert.deepEqual(p.members.map((m) => m.user), [...users].sort());
    assert.ok(p.members.every((m) => m.sessions === 2 && m.nodes.length === 1), JSON.stringify(p.members));
    assert.equal(p.presence_topic, PRESENCE);
    await waitUntil(() => actions(watcher).length === 10, { message: 'ten joins' });
    assert.deepEqual(actions(watcher).sort(), users.map((u) => `join:${u}`).sort());
    // u0-u2 close both sessions cleanly; u3-u5 drop both TCP connections;
    // u6-u7 unsubscribe one session and go silent on the other (the
    // heartbeat closes it); u8-u9 lose one session only.
    for (const u of ['u0', 'u1', 'u2']) for (const c of clients[u]) c.ws.close();
    for (const u of ['u3', 'u4', 'u5']) for (const c of clients[u]) c.terminate();
    for (const u of ['u6', 'u7']) {
      await clients[u][1].unsubscribe(TOPIC);
      answering.delete(u);
    }
    for (const u of ['u8', 'u9']) clients[u][1].terminate();
    for (const u of ['u6', 'u7']) {
      const close = await clients[u][0].waitClose(5000);
      assert.equal(close.code, 4408, `${u}: closed by the heartbeat`);
    }
    p = await presenceUntil(node, admin, 2, 2);
    assert.deepEqual(p.members.map((m) => [m.user, m.sessions]), [['u8', 1], ['u9', 1]]);
    await waitUntil(() => actions(watcher).length === 18, { message: 'eight leaves' });
    const leaves = actions(watcher).filter((a) => a.startsWith('leave:')).sort();
    assert.deepEqual(leaves, users.slice(0, 8).map((u) => `leave:${u}`).sort(), 'each user left once, when their last session went');
    // Events carry the count after the change.
    const last = watcher.events((e) => e.topic === PRESENCE).at(-1);
    assert.equal(last.data.users, 2);
    // The presence frame answers as the endpoint does.
    watcher.send({ type: 'presence', id: 'p1', topic: TOPIC });
    const answer = await watcher.waitFor((f) => f.type === 'presence' && f.id === 'p1', { what: 'the presence answer' });
    assert.equal(answer.users, 2);
    assert.deepEqual(answer.members.map((m) => m.user), ['u8', 'u9']);
    // A user reconnecting joins again.
    const back = await node.connect({ t, token: node.token({ sub: 'u0', org: ORG }) });
    await back.subscribe(TOPIC);
    await watcher.waitEvent((e) => e.topic === PRESENCE && e.data.action === 'join' && e.data.user === 'u0' && e.data.users === 3);
  });

  it('online state is what the notifier sees; who may ask what', T, async (t) => {
    const node = await startNode(['--presence-max-members', '3'], { secret: SECRET });
    t.after(() => node.stop());
    const admin = node.token({ sub: 'root', org: ORG, admin: true });
    const alice = node.token({ sub: 'alice', org: ORG });
    const a1 = await node.connect({ t, token: alice });
    await node.connect({ t, token: alice });
    assert.deepEqual(await presenceOf(node, alice, 'user=alice'), { user: 'alice', online: true, sessions: 2 });
    assert.deepEqual(await presenceOf(node, admin, 'user=bob'), { user: 'bob', online: false, sessions: 0 });
    await api(node, 'GET', '/v1/presence?user=alice', node.token({ sub: 'bob', org: ORG }), undefined, 403);
    await api(node, 'GET', '/v1/presence', alice, undefined, 400);
    await api(node, 'GET', `/v1/presence?topic=${TOPIC}&user=alice`, alice, undefined, 400);
    await api(node, 'GET', `/v1/presence?topic=events.${ORG}.docs.*.edited.d1`, alice, undefined, 400);
    await api(node, 'GET', `/v1/presence?topic=${TOPIC}`, undefined, undefined, 401);
    await api(node, 'GET', `/v1/presence?topic=events.org_9.docs.doc.edited.d1`, alice, undefined, 403);
    const limited = node.token({ sub: 'carol', org: ORG, subAllow: [`events.${ORG}.other.>`] });
    await api(node, 'GET', `/v1/presence?topic=${TOPIC}`, limited, undefined, 403);
    const c = await node.connect({ t, token: limited });
    const refused = await c.request({ type: 'subscribe', topic: PRESENCE });
    assert.equal(refused.code, 'forbidden');
    const bad = await a1.request({ type: 'subscribe', topic: `presence.${ORG}.events.${ORG}.docs.*.edited.d1` });
    assert.equal(bad.code, 'bad_topic');
    // Above the cap: counts only, no more joins.
    const watcher = await node.connect({ t, token: admin });
    await watcher.subscribe(PRESENCE);
    for (const u of ['v1', 'v2', 'v3', 'v4', 'v5']) {
      const x = await node.connect({ t, token: node.token({ sub: u, org: ORG }) });
      await x.subscribe(TOPIC);
    }
    const p = await presenceUntil(node, admin, 5, 5);
    assert.equal(p.capped, true);
    assert.deepEqual(p.members, []);
    await waitUntil(() => actions(watcher).length >= 3, { message: 'three joins' });
    assert.deepEqual(actions(watcher), ['join:v1', 'join:v2', 'join:v3']);
    a1.ws.close();
    await waitUntil(async () => (await presenceOf(node, alice, 'user=alice')).sessions === 1, { message: 'one session of alice' });
  });

  it('a room: its participants see who is there; others get 403', T, async (t) => {
    const nats = await startJetStream(t);
    const node = await startNode(['--nats', nats.url, ...FAST_RECONNECT, '--heartbeat-interval', '300ms'], { secret: SECRET });
    t.after(() => node.stop());
    const alice = node.token({ sub: 'alice', org: ORG });
    const room = await waitUntil(async () => {
      const r = await api(node, 'POST', '/v1/rooms', alice, { name: 'presence' });
      return r.status === 201 ? r.json : false;
    }, { message: 'the room' });
    await api(node, 'POST', `/v1/rooms/${room.id}/participants`, alice, { id: 'bob', kind: 'user' }, 201);
    const roomKey = `presence.${ORG}.room.${room.id}`;
    const a = await node.connect({ t, token: alice });
    await a.subscribe(roomKey);
    const b = await node.connect({ t, token: node.token({ sub: 'bob', org: ORG }) });
    // Two patterns naming the room: bob counts once.
    await b.subscribe(`events.${ORG}.conversations.conversation.*.${room.id}`);
    await b.subscribe(`events.${ORG}.conversations.conversation.message_posted.${room.id}`);
    const p = await presenceUntil(node, alice, 1, 1, `room=${room.id}`);
    assert.deepEqual(p.members.map((m) => m.user), ['bob']);
    await a.waitEvent((e) => e.topic === roomKey && e.data.action === 'join' && e.data.user === 'bob');
    const mallory = node.token({ sub: 'mallory', org: ORG });
    await api(node, 'GET', `/v1/presence?room=${room.id}`, mallory, undefined, 403);
    const m = await node.connect({ t, token: mallory });
    assert.equal((await m.request({ type: 'subscribe', topic: roomKey })).code, 'forbidden');
    m.send({ type: 'presence', id: 'p', room: room.id });
    const refused = await m.waitFor((f) => f.id === 'p', { what: 'the refusal' });
    assert.equal(refused.code, 'forbidden');
    // A token whose sub_allow does not reach the room's topics.
    const narrow = node.token({ sub: 'alice', org: ORG, subAllow: [`events.${ORG}.docs.>`] });
    await api(node, 'GET', `/v1/presence?room=${room.id}`, narrow, undefined, 403);
    // A room that does not exist is nobody's to see.
    await api(node, 'GET', '/v1/presence?room=conv_000000000000000000000000', alice, undefined, 403);
    await b.unsubscribe(`events.${ORG}.conversations.conversation.*.${room.id}`);
    await presenceUntil(node, alice, 1, 1, `room=${room.id}`);
    await b.unsubscribe(`events.${ORG}.conversations.conversation.message_posted.${room.id}`);
    await presenceUntil(node, alice, 0, 0, `room=${room.id}`);
    await a.waitEvent((e) => e.topic === roomKey && e.data.action === 'leave' && e.data.user === 'bob');
    // Removed from the private room, bob loses its presence within a heartbeat.
    await b.subscribe(roomKey);
    await api(node, 'DELETE', `/v1/rooms/${room.id}/participants/bob`, alice, undefined, 204);
    const gone = await b.waitFor((f) => f.type === 'unsubscribed' && f.topic === roomKey, { what: 'the unsubscribed frame' });
    assert.equal(gone.reason, 'forbidden');
  });

  it('two clustered nodes count a user once; a killed node takes its users along', T, async (t) => {
    const nats = await startJetStream(t);
    const ports = [await freePort(), await freePort()];
    const start = async (i) => {
      const node = await startNode([
        '--nats', nats.url, ...FAST_RECONNECT,
        '--cluster-port', String(ports[i]), '--node-name', `n${i + 1}`,
        '--cluster-seeds', `127.0.0.1:${ports[1 - i]}`, '--cluster-timeout', '1s',
      ], { secret: SECRET });
      t.after(() => node.stop());
      return node;
    };
    const n1 = await start(0);
    const n2 = await start(1);
    const root = n1.token({ sub: 'root', org: ORG, admin: true, nodeAdmin: true });
    await waitUntil(async () => {
      const r = await api(n1, 'GET', '/v1/cluster', root);
      return r.status === 200 && r.json.members.filter((m) => m.state !== 'down').length === 2;
    }, { timeout: 20000, message: 'two members' });
    const watcher = await n1.connect({ t, token: root });
    await watcher.subscribe(PRESENCE);
    const alice = n1.token({ sub: 'alice', org: ORG });
    const bob = n1.token({ sub: 'bob', org: ORG });
    for (const [node, token] of [[n1, alice], [n2, alice], [n2, bob]]) {
      const c = await node.connect({ t, token });
      await c.subscribe(TOPIC);
    }
    for (const node of [n1, n2]) {
      const p = await presenceUntil(node, root, 2, 3);
      assert.deepEqual(p.members.map((m) => [m.user, m.sessions, m.nodes]), [['alice', 2, ['n1', 'n2']], ['bob', 1, ['n2']]]);
    }
    await waitUntil(() => actions(watcher).length === 2, { message: 'two joins' });
    assert.deepEqual(actions(watcher).sort(), ['join:alice', 'join:bob']);
    n2.proc.kill('SIGKILL');
    const p = await presenceUntil(n1, root, 1, 1);
    assert.deepEqual(p.members.map((m) => [m.user, m.nodes]), [['alice', ['n1']]]);
    await watcher.waitEvent((e) => e.topic === PRESENCE && e.data.action === 'leave' && e.data.user === 'bob', { timeout: 15000 });
    assert.deepEqual(actions(watcher).sort(), ['join:alice', 'join:bob', 'leave:bob']);
  });
});
