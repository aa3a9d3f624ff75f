// A local push gateway for the notification tests: records every request
// and answers as told (`mode`: 'ok' answers 200, 'down' answers 503,
// 'refuse' answers 400). Requests carry the notification in their JSON body
// and its id in `Idempotency-Key`.
import http from 'node:http';

export async function startPushServer() {
  const server = {
    mode: 'ok',
    /** Every request: { headers, body, status }. */
    requests: [],
    /** Bodies of the requests answered 2xx. */
    get delivered() {
      return this.requests.filter((r) => r.status === 200).map((r) => r.body);
    },
    /** Requests (any answer) for notification `id`. */
    attempts(id) {
      return this.requests.filter((r) => r.body?.id === id);
    },
  };
  const srv = http.createServer((req, res) => {
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
      const status = server.mode === 'ok' ? 200 : server.mode === 'down' ? 503 : 400;
      server.requests.push({ method: req.method, url: req.url, headers: req.headers, body, status });
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(status === 200 ? '{"accepted":true}' : '{"error":"not now"}');
    });
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  server.url = `http://127.0.0.1:${srv.address().port}/push`;
  server.close = () => new Promise((resolve) => srv.close(resolve));
  return server;
}
