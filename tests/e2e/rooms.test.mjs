// Rooms end to end on the in-process bus: the HTTP API, participants and
// their rights, an echo agent streaming its reply token by token, a watcher
// joining mid-reply (catch-up, then the live tokens: no gap, no duplicate),
// cancellation, and the fence around private rooms (a non-participant is
// refused, and an org-wide wildcard shows nothing of a room it may not see).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, sleep } from './lib/node.mjs';

const T = { timeout: 60000 };
const ORG = 'org_123';
const topic = (event, room) => `events.${ORG}.conversations.conversation.${event}.${room}`;

/** The stream events of reply `mid` that `c` received, in order. */
const streamOf = (c, mid) =>
  c.events((e) => e.topic.includes('.message_stream.') && e.data.message_id === mid).map((e) => e.data);

/** Checks a watcher's view of reply `mid`: catch-up (optional) then tokens, no gap, no duplicate. */
function assertWhole(frames, expectedText, what) {
  assert.ok(frames.length > 0, `${what}: no stream events`);
  let text = '';
  let last = -1;
  for (const f of frames) {
    if (f.text !== undefined) {
      assert.equal(last, -1, `${what}: a catch-up comes first: ${JSON.stringify(frames)}`);
      text = f.text;
      last = f.index;
      continue;
    }
    assert.ok(f.index > last, `${what}: indexes increase: ${JSON.stringify(frames)}`);
    text += f.token;
    last = f.index;
  }
  const end = frames[frames.length - 1];
  assert.equal(end.done, true, `${what}: the last event is done: ${JSON.stringify(end)}`);
  assert.equal(end.state, 'complete', `${what}: ${JSON.stringify(end)}`);
  assert.equal(text, expectedText, `${what}: the tokens add up to the reply`);
}

describe('rooms (in-process bus)', () => {
  let node, alice, bob, eve, admin;
  before(async () => {
    node = await startNode(['--dev']);
    alice = node.token({ sub: 'alice', org: ORG });
    bob = node.token({ sub: 'bob', org: ORG });
    eve = node.token({ sub: 'eve', org: ORG });
    admin = node.token({ sub: 'ops', org: ORG, admin: true });
  });
  after(async () => {
    await node?.stop();
  });

  const api = (method, path, token, body) => node.http(method, path, { token, body });

  async function createRoom(token, name, isPrivate = true) {
    const r = await api('POST', '/v1/rooms', token, { name, private: isPrivate });
    assert.equal(r.status, 201, `create room: ${r.status} ${r.text}`);
    assert.match(r.json.id, /^conv_[0-9a-f]{24}$/);
    return r.json;
  }

  async function addParticipant(token, room, p, status = 201) {
    const r = await api('POST', `/v1/rooms/${room}/participants`, token, p);
    assert.equal(r.status, status, `add ${JSON.stringify(p)}: ${r.status} ${r.text}`);
    return r.json;
  }

  async function post(token, room, text) {
    const r = await api('POST', `/v1/rooms/${room}/messages`, token, { text });
    assert.equal(r.status, 202, `post: ${r.status} ${r.text}`);
    assert.equal(typeof r.json.message_id, 'string');
    return r.json;
  }

  it('creates a room with its creator as participant, lists and reads it', T, async () => {
    const room = await createRoom(alice, 'planning');
    assert.equal(room.name, 'planning');
    assert.equal(room.private, true);
    assert.deepEqual(room.participants.map((p) => [p.id, p.kind]), [['alice', 'user']]);
    const got = await api('GET', `/v1/rooms/${room.id}`, alice);
    assert.equal(got.status, 200, got.text);
    assert.equal(got.json.id, room.id);
    const list = await api('GET', '/v1/rooms', alice);
    assert.equal(list.status, 200, list.text);
    assert.ok(list.json.rooms.some((r) => r.id === room.id), list.text);
    const others = await api('GET', '/v1/rooms', eve);
    assert.ok(!others.json.rooms.some((r) => r.id === room.id), `eve's list leaks alice's room: ${others.text}`);
    const unauth = await api('GET', '/v1/rooms');
    assert.equal(unauth.status, 401);
    const missing = await api('GET', '/v1/rooms/conv_000000000000000000000000', alice);
    assert.equal(missing.status, 404);
    assert.equal(missing.json.code, 'not_found');
  });

  it('pages through the caller\'s rooms', T, async () => {
    const carol = node.token({ sub: 'carol', org: ORG });
    const made = [];
    for (let i = 0; i < 5; i++) made.push((await createRoom(carol, `r${i}`)).id);
    const seen = [];
    let after = '';
    for (let page = 0; page < 5; page++) {
      const r = await api('GET', `/v1/rooms?limit=2${after ? `&after=${after}` : ''}`, carol);
      assert.equal(r.status, 200, r.text);
      seen.push(...r.json.rooms.map((x) => x.id));
      if (r.json.next === null) break;
      after = r.json.next;
    }
    assert.deepEqual([...seen].sort(), [...made].sort());
    const bad = await api('GET', '/v1/rooms?limit=x', carol);
    assert.equal(bad.status, 400);
  });

  it('keeps private rooms to their participants (HTTP 403, forbidden on subscribe)', T, async (t) => {
    const room = await createRoom(alice, 'secret');
    for (const [method, path, body] of [
      ['GET', `/v1/rooms/${room.id}`],
      ['GET', `/v1/rooms/${room.id}/messages`],
      ['POST', `/v1/rooms/${room.id}/messages`, { text: 'hi' }],
      ['POST', `/v1/rooms/${room.id}/participants`, { id: 'eve', kind: 'user' }],
    ]) {
      const r = await api(method, path, eve, body);
      assert.equal(r.status, 403, `${method} ${path} by a non-participant: ${r.status} ${r.text}`);
      assert.equal(r.json.code, 'forbidden');
      assert.ok(!r.text.includes('secret'), `a refusal shows no room data: ${r.text}`);
    }
    const c = await node.connect({ t, token: eve });
    const r = await c.request({ type: 'subscribe', topic: topic('message_posted', room.id) });
    assert.equal(r.type, 'error', JSON.stringify(r));
    assert.equal(r.code, 'forbidden');
    const r2 = await c.request({ type: 'subscribe', topic: `events.${ORG}.*.*.*.${room.id}` });
    assert.equal(r2.code, 'forbidden', JSON.stringify(r2));
  });

  it('publishing into the rooms\' topics is refused', T, async () => {
    const pub = node.token({ sub: 'svc', org: ORG, pub: [`events.${ORG}.>`] });
    const r = await node.publish(pub, { topic: topic('message_posted', 'conv_000000000000000000000000'), data: {} });
    assert.equal(r.status, 403, r.text);
  });

  it('streams an echo reply token by token, then posts it whole into the history', T, async (t) => {
    const room = await createRoom(alice, 'echoes');
    await addParticipant(alice, room.id, { id: 'bob', kind: 'user' });
    const joined = await addParticipant(alice, room.id, {
      id: 'agent_echo', kind: 'agent', behavior: 'echo', auto_respond: 'always', config: { delay_ms: 5 },
    });
    assert.ok(joined.participants.some((p) => p.id === 'agent_echo' && p.kind === 'agent'));
    // Two subscriptions each, and one subscription to all of the room's
    // events (one topic: its events come in the order they were published).
    const watchers = [];
    for (const token of [alice, bob]) {
      const c = await node.connect({ t, token });
      await c.subscribe(topic('message_stream', room.id));
      await c.subscribe(topic('message_posted', room.id));
      watchers.push(c);
    }
    const whole = await node.connect({ t, token: alice });
    await whole.subscribe(topic('*', room.id));
    watchers.push(whole);
    const text = 'the quick brown fox jumps over the lazy dog';
    const posted = await post(bob, room.id, text);
    for (const c of watchers) {
      const mine = await c.waitEvent((e) => e.data.message_id === posted.message_id, { what: 'the posted message' });
      assert.equal(mine.data.author, 'bob');
      assert.equal(mine.data.author_kind, 'user');
      const reply = await c.waitEvent(
        (e) => e.topic === topic('message_posted', room.id) && e.data.author === 'agent_echo',
        { what: 'the reply posted whole' },
      );
      assert.equal(reply.data.text, text);
      assert.equal(reply.data.state, 'complete');
      assert.ok(reply.data.seq > mine.data.seq);
      // Another topic: its events may come before or after message_posted.
      await c.waitEvent((e) => e.data.message_id === reply.data.message_id && e.data.done === true, { what: 'the end of the stream' });
      const tokens = streamOf(c, reply.data.message_id);
      assert.equal(tokens.length, text.split(' ').length + 1, `one event per word and the end: ${JSON.stringify(tokens)}`);
      assert.deepEqual(tokens.map((x) => x.index), tokens.map((_, i) => i));
      assertWhole(tokens, text, 'watcher');
    }
    // On one subscription, the reply's tokens all come before its message_posted.
    const reply = whole.events((e) => e.data.author === 'agent_echo' && e.topic.includes('message_posted'))[0];
    const order = whole.events((e) => e.data.message_id === reply.data.message_id).map((e) => e.topic.split('.')[4]);
    assert.equal(order[order.length - 1], 'message_posted', order.join(','));
    assert.equal(order.length, text.split(' ').length + 2, order.join(','));
    const hist = await api('GET', `/v1/rooms/${room.id}/messages`, alice);
    assert.equal(hist.status, 200, hist.text);
    const msgs = hist.json.messages;
    assert.deepEqual(msgs.map((m) => m.author), ['bob', 'agent_echo']);
    assert.equal(msgs[1].text, text);
    assert.equal(msgs[1].state, 'complete');
    assert.ok(msgs[0].seq < msgs[1].seq);
    const after = await api('GET', `/v1/rooms/${room.id}/messages?after=${msgs[0].seq}`, alice);
    assert.deepEqual(after.json.messages.map((m) => m.message_id), [msgs[1].message_id]);
  });

  it('a watcher joining mid-reply gets the text so far, then the rest', T, async (t) => {
    const room = await createRoom(alice, 'late');
    await addParticipant(alice, room.id, {
      id: 'agent_slow', kind: 'agent', behavior: 'echo', auto_respond: 'mention', config: { delay_ms: 40 },
    });
    const early = await node.connect({ t, token: alice });
    await early.subscribe(topic('message_stream', room.id));
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`);
    const text = `@agent_slow ${words.join(' ')}`;
    await post(alice, room.id, text);
    await early.waitState((c) => c.events((e) => e.data.index >= 5).length > 0, { what: 'a few tokens' });
    // Joins mid-reply, once with the room's topic and once with the org-wide wildcard.
    const late = await node.connect({ t, token: alice });
    await late.subscribe(topic('message_stream', room.id));
    const wild = await node.connect({ t, token: alice });
    await wild.subscribe(topic('message_stream', '*'));
    for (const c of [early, late, wild])
      await c.waitEvent((e) => e.data.done === true, { what: 'the end of the reply', timeout: 20000 });
    const mid = early.events()[0].data.message_id;
    assertWhole(streamOf(early, mid), text, 'early watcher');
    for (const [c, what] of [[late, 'late watcher'], [wild, 'wildcard watcher']]) {
      const frames = streamOf(c, mid);
      assert.equal(typeof frames[0].text, 'string', `${what}: starts with a catch-up: ${JSON.stringify(frames[0])}`);
      assert.ok(frames[0].index >= 5, `${what}: the catch-up has the tokens so far`);
      assert.equal(frames[0].done, false);
      assertWhole(frames, text, what);
    }
  });

  it('a cancelled reply ends with state cancelled and keeps the text so far', T, async (t) => {
    const room = await createRoom(alice, 'cancel');
    await addParticipant(alice, room.id, {
      id: 'agent_c', kind: 'agent', behavior: 'echo', auto_respond: 'always', config: { delay_ms: 50 },
    });
    const c = await node.connect({ t, token: alice });
    await c.subscribe(topic('message_stream', room.id));
    await c.subscribe(topic('message_posted', room.id));
    await post(alice, room.id, Array.from({ length: 100 }, (_, i) => `t${i}`).join(' '));
    const first = await c.waitEvent((e) => e.topic.includes('.message_stream.') && e.data.index >= 2, { what: 'tokens' });
    const mid = first.data.message_id;
    const r = await api('POST', `/v1/rooms/${room.id}/messages/${mid}/cancel`, alice);
    assert.equal(r.status, 202, r.text);
    const end = await c.waitEvent((e) => e.data.message_id === mid && e.data.done === true, { what: 'the end' });
    assert.equal(end.data.state, 'cancelled');
    const final = await c.waitEvent((e) => e.topic === topic('message_posted', room.id) && e.data.message_id === mid, {
      what: 'the cancelled reply posted',
    });
    assert.equal(final.data.state, 'cancelled');
    assert.ok(final.data.text.startsWith('t0 t1 t2'), final.data.text);
    assert.ok(final.data.text.length < 300);
    const again = await api('POST', `/v1/rooms/${room.id}/messages/${mid}/cancel`, alice);
    assert.equal(again.status, 409, again.text);
  });

  it('an org-wide wildcard shows only the rooms its subscriber may see', T, async (t) => {
    const priv = await createRoom(alice, 'private-one');
    await addParticipant(alice, priv.id, { id: 'agent_p', kind: 'agent', behavior: 'echo', auto_respond: 'always' });
    const open = await createRoom(bob, 'open-one', false);
    const spy = await node.connect({ t, token: eve });
    await spy.subscribe(`events.${ORG}.conversations.conversation.*.*`);
    const member = await node.connect({ t, token: alice });
    await member.subscribe(`events.${ORG}.conversations.conversation.*.*`);
    await post(alice, priv.id, 'private words');
    await post(bob, open.id, 'public words');
    await member.waitEvent((e) => e.data.author === 'agent_p' && e.topic.includes('message_posted'), { what: 'the private reply' });
    await spy.waitEvent((e) => e.data.text === 'public words', { what: 'the public message' });
    // A barrier: a later public event, so anything private would have come before it.
    await post(bob, open.id, 'barrier');
    await spy.waitEvent((e) => e.data.text === 'barrier', { what: 'the barrier' });
    const leaked = spy.events((e) => e.topic.endsWith(priv.id));
    assert.deepEqual(leaked, [], `eve saw the private room: ${JSON.stringify(leaked)}`);
    // A public room: eve may read it and join herself, but not post before joining.
    const read = await api('GET', `/v1/rooms/${open.id}/messages`, eve);
    assert.equal(read.status, 200, read.text);
    const denied = await api('POST', `/v1/rooms/${open.id}/messages`, eve, { text: 'x' });
    assert.equal(denied.status, 403);
    await addParticipant(eve, open.id, { id: 'eve', kind: 'user' });
    await post(eve, open.id, 'now I am in');
  });

  it('checks participants and agents as they join and leave', T, async (t) => {
    const room = await createRoom(alice, 'checks');
    await addParticipant(alice, room.id, { id: 'a1', kind: 'agent', behavior: 'nope' }, 400);
    await addParticipant(alice, room.id, { id: 'a1', kind: 'agent', behavior: 'echo', config: { delay_ms: -1 } }, 400);
    await addParticipant(alice, room.id, { id: 'a 1', kind: 'agent', behavior: 'echo' }, 400);
    await addParticipant(alice, room.id, { id: 'x', kind: 'robot' }, 400);
    await addParticipant(alice, room.id, { id: 'alice', kind: 'user' }, 409);
    const c = await node.connect({ t, token: alice });
    await c.subscribe(topic('participant_joined', room.id));
    await c.subscribe(topic('participant_left', room.id));
    await addParticipant(alice, room.id, { id: 'bob', kind: 'user' });
    const j = await c.waitEvent((e) => e.topic.includes('participant_joined'), { what: 'joined' });
    assert.equal(j.data.participant.id, 'bob');
    const del = await api('DELETE', `/v1/rooms/${room.id}/participants/bob`, alice);
    assert.equal(del.status, 204, del.text);
    const l = await c.waitEvent((e) => e.topic.includes('participant_left'), { what: 'left' });
    assert.equal(l.data.participant.id, 'bob');
    const gone = await api('GET', `/v1/rooms/${room.id}`, bob);
    assert.equal(gone.status, 403);
    const again = await api('DELETE', `/v1/rooms/${room.id}/participants/bob`, alice);
    assert.equal(again.status, 404);
  });

  it('agents never answer agents, and mention means @id', T, async (t) => {
    const room = await createRoom(alice, 'mentions');
    await addParticipant(alice, room.id, { id: 'agent_a', kind: 'agent', behavior: 'echo', auto_respond: 'always' });
    await addParticipant(alice, room.id, { id: 'agent_m', kind: 'agent', behavior: 'shout', auto_respond: 'mention' });
    const c = await node.connect({ t, token: alice });
    await c.subscribe(topic('message_posted', room.id));
    await post(alice, room.id, 'hello @agent_mx');
    await post(alice, room.id, 'hi @agent_m');
    await c.waitEvent((e) => e.data.author === 'agent_m', { what: 'the shout reply' });
    await post(alice, room.id, 'barrier');
    await c.waitEvent((e) => e.data.author === 'agent_a' && e.data.text === 'barrier', { what: 'the echo of the barrier' });
    await sleep(100);
    const replies = c.events((e) => e.data.author_kind === 'agent').map((e) => [e.data.author, e.data.text]);
    const sorted = (xs) => xs.map((x) => x.join('|')).sort();
    assert.deepEqual(
      sorted(replies),
      sorted([
        ['agent_a', 'hello @agent_mx'],
        ['agent_a', 'hi @agent_m'],
        ['agent_m', 'HI @AGENT_M!'],
        ['agent_a', 'barrier'],
      ]),
      'agent_m answers its mention only, agent_a every user message, neither answers the other',
    );
  });
});
