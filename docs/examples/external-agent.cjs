#!/usr/bin/env node
// An external agent: answers every user message of one room by streaming
// "you said: <text>" into it a word at a time, over NATS only (see
// docs/external-agents.md). Needs the npm packages `nats` and
// `@msgpack/msgpack`.
//
//   node docs/examples/external-agent.cjs --nats nats://127.0.0.1:4222 \
//     --org org_123 --room conv_... --agent agent_ext
//
// The agent must be a participant of the room with behavior "external".
'use strict';
const { connect, StringCodec } = require('nats');
const { decode } = require('@msgpack/msgpack');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback !== undefined) return fallback;
  console.error(`missing --${name}`);
  process.exit(2);
}

const natsUrl = arg('nats', 'nats://127.0.0.1:4222');
const org = arg('org');
const room = arg('room');
const agent = arg('agent');
const sc = StringCodec();

/** Sends one request and returns its JSON answer. */
async function ask(nc, subject, body) {
  const msg = await nc.request(subject, sc.encode(JSON.stringify(body)), { timeout: 10000 });
  return JSON.parse(sc.decode(msg.data));
}

async function answer(nc, prompt) {
  const start = await ask(nc, 'switchyard.agents.start', {
    org, room, agent, reply_to: prompt.message_id,
  });
  if (!start.ok) {
    console.error(`start refused: ${start.code}: ${start.message}`);
    return;
  }
  const words = `you said: ${prompt.text}`.split(' ');
  for (let i = 0; i < words.length; i++) {
    // A request per token: its answer comes once the token is on its way
    // to the watchers (credit), or says the reply has ended (cancelled).
    const r = await ask(nc, start.subject, { type: 'token', token: (i ? ' ' : '') + words[i] });
    if (!r.ok) return;
  }
  await ask(nc, start.subject, { type: 'end' });
}

async function main() {
  const nc = await connect({ servers: natsUrl, name: `agent-${agent}` });
  // Room events travel the bus as msgpack envelopes {id, topic, ts, source, data}.
  const sub = nc.subscribe(`events.${org}.conversations.conversation.message_posted.${room}`);
  console.log('ready');
  for await (const m of sub) {
    const env = decode(m.data);
    // Never answer an agent: no reply loops.
    if (env.data.author_kind !== 'user') continue;
    answer(nc, env.data).catch((e) => console.error(`reply failed: ${e.message}`));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
