// A local stand-in for an OpenAI-compatible chat completions server, for
// the `openai` agent's tests: POST /v1/chat/completions with "stream": true
// answers `text/event-stream`, one word per chunk `delayMs` apart, then
// `data: [DONE]`, the way api.openai.com streams.
//
//   const ai = await startOpenAIServer({ delayMs: 5 });
//   ... config {"url": ai.url, ...} ...
//   ai.requests      every request: { method, path, headers, body }
//   ai.mode = 'fail' HTTP 500 with an OpenAI error body
//   ai.mode = 'stall' the header and one word, then silence
//   ai.reply = (body) => 'text'   what to answer (default: echoes the prompt)
//   await ai.close()
import http from 'node:http';

/** The default answer: the last user message, echoed. */
function echo(body) {
  const last = [...(body?.messages ?? [])].reverse().find((m) => m.role === 'user');
  return `you said: ${last?.content ?? ''}`;
}

function chunk(id, delta, finish = null) {
  return `data: ${JSON.stringify({
    id,
    object: 'chat.completion.chunk',
    created: Math.floor(Date.now() / 1000),
    model: 'test-model',
    choices: [{ index: 0, delta, finish_reason: finish }],
  })}\n\n`;
}

export async function startOpenAIServer({ delayMs = 10 } = {}) {
  const sockets = new Set();
  const timers = new Set();
  let seq = 0;
  const state = {
    url: '',
    requests: [],
    mode: 'ok',
    reply: echo,
    /** Sockets the server holds open now (a stalled reply keeps one). */
    get open() {
      return sockets.size;
    },
    close,
  };

  const later = (ms, fn) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      let body;
      try {
        body = JSON.parse(raw);
      } catch {
        body = undefined;
      }
      state.requests.push({ method: req.method, path: req.url, headers: req.headers, body });
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}`, type: 'invalid_request_error' } }));
        return;
      }
      if (state.mode === 'fail') {
        res.writeHead(500, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'the model is on fire', type: 'server_error' } }));
        return;
      }
      if (body?.stream !== true) {
        res.writeHead(400, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'this test server only streams', type: 'invalid_request_error' } }));
        return;
      }
      const id = `chatcmpl-${++seq}`;
      const words = String(state.reply(body)).split(/(?<= )/);
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      res.write(chunk(id, { role: 'assistant', content: '' }));
      if (state.mode === 'stall') {
        res.write(chunk(id, { content: words[0] }));
        return; // never ends: the client's idle timeout must
      }
      let i = 0;
      const next = () => {
        if (res.destroyed) return;
        if (i < words.length) {
          res.write(chunk(id, { content: words[i++] }));
          later(delayMs, next);
          return;
        }
        res.write(chunk(id, {}, 'stop'));
        res.end('data: [DONE]\n\n');
      };
      later(delayMs, next);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${server.address().port}/v1`;

  function close() {
    for (const t of timers) clearTimeout(t);
    timers.clear();
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  return state;
}
