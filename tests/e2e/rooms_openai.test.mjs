// The `openai` agent in a room, against a local OpenAI-compatible server
// (lib/openai_server.mjs): the reply streams token by token over the
// WebSocket, is posted whole and stored complete; the request carries the
// model, the key from the node's environment and the room's history; a
// failing or stalled server fails the reply with its reason.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, waitUntil } from './lib/node.mjs';
import { startOpenAIServer } from './lib/openai_server.mjs';

const T = { timeout: 30000 };
const ORG = 'org_123';
// The node inherits the test's environment: the key is set before it starts.
const KEY_ENV = 'SWITCHYARD_E2E_OPENAI_KEY';
const KEY = 'sk-e2e-test-key';
const topic = (event, room) => `events.${ORG}.conversations.conversation.${event}.${room}`;

describe('rooms: openai agent', () => {
  let node, ai, token;
  before(async () => {
    ai = await startOpenAIServer({ delayMs: 5 });
    process.env[KEY_ENV] = KEY;
    node = await startNode([]);
    token = node.token({ sub: 'u_1', org: ORG });
  });
  after(async () => {
    await node?.stop();
    await ai?.close();
    delete process.env[KEY_ENV];
  });

  const config = (extra = {}) => ({ url: ai.url, model: 'test-model', api_key_env: KEY_ENV, ...extra });

  /** A private room with the agent in it and a client watching its events. */
  async function room(t, agentConfig) {
    const r = await node.http('POST', '/v1/rooms', { token, body: { name: 'x', private: true } });
    assert.equal(r.status, 201, `create room: ${r.text}`);
    const id = r.json.id;
    const p = await node.http('POST', `/v1/rooms/${id}/participants`, {
      token,
      body: { id: 'agent_ai', kind: 'agent', behavior: 'openai', auto_respond: 'always', config: agentConfig },
    });
    assert.ok(p.status >= 200 && p.status < 300, `add agent: ${p.status} ${p.text}`);
    const c = await node.connect({ t, token });
    await c.subscribe(topic('message_stream', id));
    await c.subscribe(topic('message_posted', id));
    return { id, c };
  }

  async function post(id, text) {
    const r = await node.http('POST', `/v1/rooms/${id}/messages`, { token, body: { text } });
    assert.equal(r.status, 202, `post message: ${r.text}`);
    return r.json.message_id;
  }

  /** The agent's reply as posted whole. */
  const reply = (c, id) =>
    c.waitEvent((e) => e.topic === topic('message_posted', id) && e.data?.author_kind === 'agent', { what: 'the agent reply', timeout: 15000 });

  async function messages(id) {
    const r = await node.http('GET', `/v1/rooms/${id}/messages`, { token });
    assert.equal(r.status, 200, `history: ${r.text}`);
    return r.json.messages;
  }

  /** The agent message of the room once its state is no longer streaming. */
  const settled = (id) =>
    waitUntil(
      async () => (await messages(id)).find((m) => m.author_kind === 'agent' && m.state && m.state !== 'streaming'),
      { timeout: 15000, message: 'the agent reply to end' },
    );

  it('streams the reply token by token, then posts and stores it complete', T, async (t) => {
    const before = ai.requests.length;
    const { id, c } = await room(t, config());
    await post(id, 'hello there');
    const posted = await reply(c, id);
    assert.equal(posted.data.author, 'agent_ai');
    assert.equal(posted.data.text, 'you said: hello there');
    const ofReply = (e) => e.topic === topic('message_stream', id) && e.data?.message_id === posted.data.message_id;
    // The two topics are not ordered with each other: the stream's end may
    // come after the posted message.
    await c.waitEvent((e) => ofReply(e) && e.data.done === true, { what: 'the end of the stream', consume: false });
    const stream = c.events(ofReply);
    assert.ok(stream.length >= 2, `expected several stream events, got ${JSON.stringify(stream.map((e) => e.data))}`);
    assert.equal(stream.map((e) => e.data.token ?? '').join(''), posted.data.text, 'the tokens make up the text');
    assert.equal(stream.at(-1).data.done, true, 'the last stream event is done');
    const indexes = stream.filter((e) => e.data.token).map((e) => e.data.index);
    assert.deepEqual(indexes, [...indexes].sort((a, b) => a - b), 'indexes ascend');
    const stored = (await messages(id)).find((m) => m.message_id === posted.data.message_id);
    assert.equal(stored?.state, 'complete', JSON.stringify(stored));
    assert.equal(stored.text, 'you said: hello there');

    assert.equal(ai.requests.length, before + 1);
    const req = ai.requests.at(-1);
    assert.equal(req.path, '/v1/chat/completions');
    assert.equal(req.headers.authorization, `Bearer ${KEY}`);
    assert.equal(req.body.model, 'test-model');
    assert.equal(req.body.stream, true);
    assert.deepEqual(req.body.messages.at(-1), { role: 'user', content: 'hello there' });
  });

  it('sends the system prompt and the recent messages with their roles', T, async (t) => {
    const { id, c } = await room(t, config({ system: 'be brief', history: 2 }));
    await post(id, 'first');
    await reply(c, id);
    await post(id, 'second');
    await c.waitEvent((e) => e.topic === topic('message_posted', id) && e.data?.text === 'you said: second', { what: 'the second reply', timeout: 15000 });
    // history 2: the first message and its reply, not more.
    assert.deepEqual(ai.requests.at(-1).body.messages, [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'first' },
      { role: 'assistant', content: 'you said: first' },
      { role: 'user', content: 'second' },
    ]);
  });

  it('a server error fails the reply with the status and the body', T, async (t) => {
    ai.mode = 'fail';
    t.after(() => (ai.mode = 'ok'));
    const { id } = await room(t, config());
    await post(id, 'hello');
    const msg = await settled(id);
    assert.equal(msg.state, 'failed', JSON.stringify(msg));
    assert.match(msg.reason, /^HTTP 500: .*the model is on fire/);
  });

  it('a stalled server fails the reply after timeout_ms', T, async (t) => {
    ai.mode = 'stall';
    t.after(() => (ai.mode = 'ok'));
    const { id } = await room(t, config({ timeout_ms: 500 }));
    await post(id, 'hello');
    const msg = await settled(id);
    assert.equal(msg.state, 'failed', JSON.stringify(msg));
    assert.equal(msg.reason, 'no data for 500 ms');
    // The agent closed the connection it gave up on.
    await waitUntil(() => ai.open === 0, { timeout: 5000, message: 'the stalled connection to close' });
  });

  it('an unset key fails the reply and names the variable', T, async (t) => {
    const { id } = await room(t, config({ api_key_env: 'SWITCHYARD_E2E_UNSET_KEY' }));
    await post(id, 'hello');
    const msg = await settled(id);
    assert.equal(msg.state, 'failed', JSON.stringify(msg));
    assert.match(msg.reason, /SWITCHYARD_E2E_UNSET_KEY/);
  });

  it('an invalid config is refused with the field it lacks', T, async (t) => {
    const r = await node.http('POST', '/v1/rooms', { token, body: { name: 'y', private: true } });
    assert.equal(r.status, 201, r.text);
    for (const [cfg, field] of [
      [{ model: 'm' }, 'config.url'],
      [{ url: 'ftp://x', model: 'm' }, 'config.url'],
      [{ url: ai.url }, 'config.model'],
    ]) {
      const p = await node.http('POST', `/v1/rooms/${r.json.id}/participants`, {
        token,
        body: { id: 'agent_bad', kind: 'agent', behavior: 'openai', auto_respond: 'always', config: cfg },
      });
      assert.equal(p.status, 400, `${JSON.stringify(cfg)}: ${p.text}`);
      assert.ok(p.json?.message?.includes(field), `${JSON.stringify(cfg)}: ${p.text}`);
    }
  });
});
