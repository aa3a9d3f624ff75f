// A live view of one room: room.html?node=<http url>&token=<jwt>&room=<id>.
// It renders agents' replies as they stream (the catch-up event a
// subscriber gets mid-reply replaces the text so far, each token is
// appended after it) and posts messages with the form. Tokens are appended
// as they come, never deduplicated, so a page test sees what the node sent.
'use strict';

const params = new URLSearchParams(location.search);
const nodeUrl = params.get('node');
const token = params.get('token');
const room = params.get('room');
const list = document.getElementById('messages');
const status = document.getElementById('status');
document.getElementById('room').textContent = room;

/** The element of message `id`, made (empty, last) on first sight. */
function messageElement(id, kind) {
  let li = document.querySelector(`li[data-message-id="${CSS.escape(id)}"]`);
  if (!li) {
    li = document.createElement('li');
    li.dataset.messageId = id;
    li.className = kind;
    const who = document.createElement('span');
    who.className = 'who';
    const text = document.createElement('span');
    text.className = 'text';
    li.append(who, text);
    list.append(li);
  }
  return li;
}

const textOf = (li) => li.querySelector('.text');

function onStream(d) {
  const li = messageElement(d.message_id, 'reply');
  if (d.text !== undefined) {
    // A catch-up: the whole text so far, in place of whatever was shown.
    textOf(li).textContent = d.text;
    li.dataset.caughtUp = String(d.index);
  } else {
    textOf(li).textContent += d.token;
  }
  li.dataset.index = String(d.index);
  li.dataset.state = d.done ? d.state : 'streaming';
}

function onPosted(d) {
  const li = messageElement(d.message_id, d.author_kind === 'agent' ? 'reply' : 'message');
  li.querySelector('.who').textContent = d.author;
  // A reply this page watched stream already shows its text; one it did not
  // (it ended before the page subscribed) gets the text whole.
  if (li.dataset.index === undefined) textOf(li).textContent = d.text;
  li.dataset.state = d.state;
}

function connect() {
  const ws = new WebSocket(`${nodeUrl.replace(/^http/, 'ws')}/v1/ws?token=${encodeURIComponent(token)}`);
  const pending = new Set();
  ws.onmessage = (msg) => {
    const f = JSON.parse(msg.data);
    if (f.type === 'welcome') {
      // The token's org names the topics.
      for (const event of ['message_stream', 'message_posted']) {
        pending.add(event);
        ws.send(JSON.stringify({ type: 'subscribe', id: event, topic: `events.${f.org}.conversations.conversation.${event}.${room}` }));
      }
    } else if (f.type === 'ok' && pending.delete(f.id) && pending.size === 0) {
      status.textContent = 'live';
      document.body.dataset.ready = 'true';
    } else if (f.type === 'error') {
      status.textContent = `error: ${f.code} ${f.message}`;
    } else if (f.type === 'event') {
      const event = f.topic.split('.')[4];
      if (event === 'message_stream') onStream(f.data);
      else if (event === 'message_posted') onPosted(f.data);
    }
  };
  ws.onclose = (e) => {
    status.textContent = `disconnected (${e.code})`;
    delete document.body.dataset.ready;
  };
}

document.getElementById('post').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = document.getElementById('text');
  try {
    const res = await fetch(`${nodeUrl}/v1/rooms/${encodeURIComponent(room)}/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ text: input.value }),
    });
    const body = await res.json();
    status.textContent = res.ok ? `posted #${body.seq}` : `not posted: ${res.status} ${body.message}`;
    if (res.ok) input.value = '';
  } catch (err) {
    status.textContent = `not posted: ${err.message}`;
  }
});

connect();
