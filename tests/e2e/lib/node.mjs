// Shared helpers for the Switchyard end-to-end tests.
//
// - startNode(): spawns `$SWITCHYARD_BIN --host 127.0.0.1 --port 0 --jwt-secret <random> ...`
//   and waits for the `listening on http://127.0.0.1:<port>` line.
// - Node#token(): mints a token with `$SWITCHYARD_BIN token ...`.
// - signJwt()/decodeJwt(): a tiny HS256/RS256/ES256 signer to craft tokens the
//   tool cannot.
// - Client: a `ws` wrapper that buffers every frame so tests can wait for
//   frames/conditions instead of sleeping.
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { encode as mpEncode, decodeMulti as mpDecodeMulti } from '@msgpack/msgpack';

// Default: <repo>/build/switchyard (this file lives in <repo>/tests/e2e/lib/).
export const BIN =
  process.env.SWITCHYARD_BIN ||
  decodeURIComponent(new URL('../../../build/switchyard', import.meta.url).pathname);

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with fn()'s first truthy result; polls every `interval` ms, throws after `timeout` ms. */
export async function waitUntil(fn, { timeout = 10000, interval = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      lastErr = undefined;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out after ${timeout} ms waiting for ${message}` +
          (lastErr ? ` (last error: ${lastErr.message})` : ''),
      );
    }
    await sleep(interval);
  }
}

/**
 * Runs `check` now and again whenever the owner runs its `waiters` (on every
 * frame it receives), until `check` returns `{ value }` (resolves with it) or
 * throws (rejects); rejects with `timeoutError()` after `timeout` ms.
 */
export function waitOn(waiters, check, { timeout, timeoutError }) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (fn, v) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      waiters.delete(run);
      fn(v);
    };
    const run = () => {
      if (settled) return;
      let r;
      try {
        r = check();
      } catch (e) {
        finish(reject, e);
        return;
      }
      if (r) finish(resolve, r.value);
    };
    const timer = setTimeout(() => finish(reject, timeoutError()), timeout);
    waiters.add(run);
    run();
  });
}

/** Rejects if `promise` has not settled within `ms`. */
export function withTimeout(promise, ms, what = 'operation') {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------
// JWT
// ---------------------------------------------------------------------------

const b64url = (s) => Buffer.from(s).toString('base64url');

/**
 * Signs `claims` as a compact JWT. alg 'none' yields an unsigned token (`h.p.`).
 * HS* take a secret (string or Buffer); RS* and ES* a private KeyObject or PEM.
 * `kid` goes into the default header; `header` replaces the header entirely.
 */
export function signJwt(claims, key, { alg = 'HS256', header, kid } = {}) {
  const head = b64url(JSON.stringify(header ?? { alg, typ: 'JWT', ...(kid === undefined ? {} : { kid }) }));
  const body = b64url(JSON.stringify(claims));
  const input = `${head}.${body}`;
  if (alg === 'none') return `${input}.`;
  const hash = `sha${alg.slice(2)}`;
  let sig;
  if (alg.startsWith('HS')) sig = crypto.createHmac(hash, key).update(input).digest();
  else if (alg.startsWith('RS')) sig = crypto.sign(hash, Buffer.from(input), key);
  // JWS ECDSA signatures are r||s, not DER.
  else if (alg.startsWith('ES')) sig = crypto.sign(hash, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else throw new Error(`signJwt: unsupported alg ${alg}`);
  return `${input}.${sig.toString('base64url')}`;
}

export function decodeJwt(token) {
  const [h, p, s] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
    signature: s,
  };
}

export const nowSec = () => Math.floor(Date.now() / 1000);

/** Mints a token with the switchyard CLI. */
export function mintToken(secret, { sub = 'u_1', org = 'org_123', admin = false, nodeAdmin = false, pub = [], subAllow = [], ttl } = {}) {
  const args = ['token', '--jwt-secret', secret, '--sub', sub, '--org', org];
  if (admin) args.push('--admin');
  if (nodeAdmin) args.push('--node-admin');
  for (const p of [].concat(pub)) args.push('--pub', p);
  for (const p of [].concat(subAllow)) args.push('--sub-allow', p);
  if (ttl !== undefined) args.push('--ttl', String(ttl));
  let out;
  try {
    out = execFileSync(BIN, args, { encoding: 'utf8', timeout: 10000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`\`${BIN} ${args.join(' ')}\` failed: ${e.message}\nstderr: ${e.stderr ?? ''}`);
  }
  const token = out.trim();
  assert.match(token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, `token tool printed something that is not a JWT: ${JSON.stringify(out)}`);
  return token;
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[2]) for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return {
    text,
    samples,
    /** Sum of all samples named `name` whose labels include `labels`; undefined if none. */
    get(name, want = {}) {
      const hits = samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
      return hits.length ? hits.reduce((a, s) => a + s.value, 0) : undefined;
    },
    has(name) {
      return samples.some((s) => s.name === name) || new RegExp(`^# TYPE ${name} `, 'm').test(text);
    },
  };
}

// ---------------------------------------------------------------------------
// WebSocket client
// ---------------------------------------------------------------------------

/** The messages of one server frame, decoded for the connection's subprotocol. */
function decodeFrame(format, data, isBinary) {
  if (format === 'msgpack') {
    if (!isBinary) return [{ type: '__text_in_msgpack__', raw: data.toString('utf8') }];
    try {
      return [...mpDecodeMulti(data)];
    } catch (e) {
      return [{ type: '__unparseable__', raw: data.toString('hex'), error: e.message }];
    }
  }
  if (isBinary) return [{ type: '__binary__', raw: data.toString('utf8'), isBinary }];
  const raw = data.toString('utf8');
  const parts = format === 'ndjson' ? raw.split('\n') : [raw];
  return parts.map((part) => {
    try {
      return JSON.parse(part);
    } catch {
      return { type: '__unparseable__', raw: part };
    }
  });
}

export class Client {
  /** `format`: the subprotocol's encoding, 'json' (default), 'ndjson' or 'msgpack'. */
  constructor(ws, format = 'json') {
    this.ws = ws;
    this.format = format;
    /** Messages per server frame, and its payload bytes, in order. */
    this.frameSizes = [];
    this.frameBytes = [];
    this.history = []; // every frame received, in order
    this.pending = []; // frames not yet consumed by waitFor()
    this.waiters = new Set();
    this.pings = 0;
    this.errors = [];
    this.closeInfo = null;
    this.welcome = null;
    this.openedAt = null;
    this._seq = 0;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        resolve(this.closeInfo);
        this._notify();
      });
    });
    ws.on('message', (data, isBinary) => {
      const messages = decodeFrame(this.format, data, isBinary);
      this.frameSizes.push(messages.length);
      this.frameBytes.push(data.length);
      for (const frame of messages) {
        this.history.push(frame);
        this.pending.push(frame);
      }
      this._notify();
    });
    ws.on('ping', () => {
      this.pings++;
      this._notify();
    });
    ws.on('error', (e) => this.errors.push(e));
  }

  _notify() {
    for (const w of [...this.waiters]) w();
  }

  _dump(list = this.history) {
    const s = JSON.stringify(
      list.slice(-8).map((f) => (f.type === 'event' && typeof f.data === 'object' && JSON.stringify(f.data ?? null).length > 200 ? { ...f, data: '<large>' } : f)),
    );
    return list.length > 8 ? `[...${list.length - 8} earlier] ${s}` : s;
  }

  /** Waits for (and by default consumes) the first pending frame matching pred. */
  waitFor(pred, { timeout = 10000, what = 'a matching frame', consume = true } = {}) {
    return waitOn(
      this.waiters,
      () => {
        const i = this.pending.findIndex(pred);
        if (i >= 0) {
          const f = this.pending[i];
          if (consume) this.pending.splice(i, 1);
          return { value: f };
        }
        if (this.closeInfo)
          throw new Error(
            `connection closed (code ${this.closeInfo.code}, reason ${JSON.stringify(this.closeInfo.reason)}) while waiting for ${what}; frames received: ${this._dump()}`,
          );
        return null;
      },
      { timeout, timeoutError: () => new Error(`timed out after ${timeout} ms waiting for ${what}; frames received: ${this._dump()}`) },
    );
  }

  /** Waits until cond(this) holds (re-evaluated on every frame/ping/close). */
  waitState(cond, { timeout = 10000, what = 'client condition' } = {}) {
    return new Promise((resolve, reject) => {
      let settled = false;
      const check = () => {
        if (settled) return;
        if (cond(this)) {
          settled = true;
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        settled = true;
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}; close=${JSON.stringify(this.closeInfo)} frames: ${this._dump()}`));
      }, timeout);
      this.waiters.add(check);
      check();
    });
  }

  waitClose(timeout = 10000) {
    return withTimeout(this.closed, timeout, `the server to close the connection (frames received: ${this._dump()})`);
  }

  waitEvent(pred = () => true, opts = {}) {
    return this.waitFor((f) => f.type === 'event' && pred(f), { what: 'an event frame', ...opts });
  }

  events(pred = () => true) {
    return this.history.filter((f) => f.type === 'event' && pred(f));
  }

  nextId() {
    return `c${++this._seq}`;
  }

  /** Sends a frame: a string as is (text), an object encoded for the subprotocol. */
  send(frame) {
    if (typeof frame === 'string') this.ws.send(frame);
    else if (this.format === 'msgpack') this.ws.send(mpEncode(frame));
    else this.ws.send(JSON.stringify(frame));
  }

  /** Sends a frame (assigning an id if missing) and waits for the ok/error reply with that id. */
  async request(frame, opts = {}) {
    const f = { ...frame };
    if (f.id === undefined) f.id = this.nextId();
    this.send(f);
    return this.waitFor((r) => (r.type === 'ok' || r.type === 'error') && r.id === f.id, {
      what: `the reply to ${JSON.stringify(f).slice(0, 200)}`,
      ...opts,
    });
  }

  async subscribe(topic) {
    const r = await this.request({ type: 'subscribe', topic });
    assert.equal(r.type, 'ok', `subscribe ${topic} should be accepted, got ${JSON.stringify(r)}`);
    return r;
  }

  async unsubscribe(topic) {
    const r = await this.request({ type: 'unsubscribe', topic });
    assert.equal(r.type, 'ok', `unsubscribe ${topic} should be accepted, got ${JSON.stringify(r)}`);
    return r;
  }

  /** Asserts the connection is still open and answering (a subscribe round trip). */
  async assertAlive(topic = 'events.org_123.alive.check') {
    assert.equal(this.closeInfo, null, `connection unexpectedly closed: ${JSON.stringify(this.closeInfo)}`);
    await this.subscribe(topic);
  }

  terminate() {
    try {
      this.ws.terminate();
    } catch {
      /* ignore */
    }
  }
}

/** Opens a WebSocket; rejects with err.status set if the upgrade is answered with an HTTP response. */
export function openWs(url, { headers = {}, autoPong = true, protocols = [], format = 'json' } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers, autoPong, closeTimeout: 3000, handshakeTimeout: 10000, maxPayload: 256 * 1024 * 1024 });
    const client = new Client(ws, format);
    ws.once('open', () => {
      client.openedAt = Date.now();
      resolve(client);
    });
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        const err = new Error(`WebSocket upgrade answered with HTTP ${res.statusCode}: ${body}`);
        err.status = res.statusCode;
        err.body = body;
        reject(err);
        req.destroy();
      });
    });
    ws.once('error', (e) => reject(e));
    ws.once('close', (code) => reject(new Error(`connection closed (code ${code}) before opening`)));
  });
}

// ---------------------------------------------------------------------------
// Node (server process)
// ---------------------------------------------------------------------------

export class Node {
  constructor(proc, secret, args) {
    this.proc = proc;
    this.secret = secret;
    this.args = args;
    this.stdoutLines = [];
    this.stderr = '';
    this.exitInfo = null;
    this.clients = new Set();
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      this.stderr += d;
      if (this.stderr.length > 200000) this.stderr = this.stderr.slice(-100000);
    });
  }

  _ready(timeout) {
    return new Promise((resolve, reject) => {
      let buf = '';
      let done = false;
      const fail = (msg) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        try {
          this.proc.kill('SIGKILL');
        } catch {
          /* ignore */
        }
        // give stderr a moment to flush into the message
        setTimeout(() => reject(new Error(`${msg}\ncommand: ${BIN} ${this.args.join(' ')}\nstderr:\n${this.stderr.slice(-4000)}`)), 50);
      };
      const timer = setTimeout(() => fail(`switchyard did not print "listening on http://127.0.0.1:<port>" within ${timeout} ms`), timeout);
      this.proc.stdout.setEncoding('utf8');
      this.proc.stdout.on('data', (d) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          this.stdoutLines.push(line);
          const m = /^listening on (https?):\/\/127\.0\.0\.1:(\d+)$/.exec(line);
          if (m && !done) {
            done = true;
            clearTimeout(timer);
            this.port = Number(m[2]);
            this.httpUrl = `${m[1]}://127.0.0.1:${this.port}`;
            this.wsUrl = `${m[1] === 'https' ? 'wss' : 'ws'}://127.0.0.1:${this.port}/v1/ws`;
            resolve(this);
          }
        }
      });
      this.proc.on('error', (e) => fail(`failed to spawn ${BIN}: ${e.message}`));
      this.proc.on('exit', (code, signal) => fail(`switchyard exited (code ${code}, signal ${signal}) before listening`));
    });
  }

  /** SIGTERM, then wait for exit (SIGKILL after `timeout` ms). */
  async stop(timeout = 10000) {
    for (const c of this.clients) c.terminate();
    if (!this.exitInfo) {
      try {
        this.proc.kill('SIGTERM');
      } catch {
        /* ignore */
      }
      try {
        await withTimeout(this.exited, timeout, 'switchyard to exit after SIGTERM');
      } catch {
        this.proc.kill('SIGKILL');
        await this.exited;
        return { ...this.exitInfo, forced: true };
      }
    }
    return this.exitInfo;
  }

  token(opts = {}) {
    return mintToken(this.secret, opts);
  }

  /** Claims of a tool-minted token (fresh iat/exp), as a base for hand-crafted tokens. */
  claims(opts = {}) {
    return decodeJwt(this.token(opts)).payload;
  }

  /** Hand-signs claims with this node's secret (or `secret`). */
  sign(claims, { secret = this.secret, alg = 'HS256', header, kid } = {}) {
    return signJwt(claims, secret, { alg, header, kid });
  }

  /**
   * Connects a client. via: 'header' | 'query' | 'frame' | 'none'.
   * With a token and expectWelcome (default), waits for the welcome (and the auth ok for 'frame').
   * Pass `t` (a test context) to terminate the client when the test ends.
   */
  async connect({ t, token, via = 'header', autoPong = true, expectWelcome = true, headers = {}, protocols = [], format } = {}) {
    let url = this.wsUrl;
    const h = { ...headers };
    if (token !== undefined && via === 'header') h.Authorization = `Bearer ${token}`;
    if (token !== undefined && via === 'query') url += `?token=${encodeURIComponent(token)}`;
    // The encoding follows the one subprotocol asked for, unless told.
    const asked = protocols.length === 1 ? /^switchyard\.v1\.(json|ndjson|msgpack)$/.exec(protocols[0]) : null;
    const c = await openWs(url, { headers: h, autoPong, protocols, format: format ?? asked?.[1] ?? 'json' });
    this.clients.add(c);
    if (t) t.after(() => c.terminate());
    if (token !== undefined && via === 'frame') c.send({ type: 'auth', id: '1', token });
    if (token !== undefined && via !== 'none' && expectWelcome) {
      c.welcome = await c.waitFor((f) => f.type === 'welcome', { what: 'the welcome frame' });
      assert.equal(c.history[0].type, 'welcome', `welcome must be the first frame, got ${c._dump()}`);
      if (via === 'frame') {
        const ok = await c.waitFor((f) => f.id === '1', { what: 'the reply to the auth frame' });
        assert.deepEqual({ type: ok.type, id: ok.id }, { type: 'ok', id: '1' }, `auth frame reply: ${JSON.stringify(ok)}`);
      }
    }
    return c;
  }

  async http(method, path, { token, body, headers = {} } = {}) {
    const h = { ...headers };
    if (token !== undefined) h.Authorization = `Bearer ${token}`;
    if (body !== undefined && h['Content-Type'] === undefined) h['Content-Type'] = 'application/json';
    const res = await fetch(this.httpUrl + path, {
      method,
      headers: h,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  }

  publish(token, body, opts = {}) {
    return this.http('POST', '/v1/publish', { token, body, ...opts });
  }

  /** Publishes and asserts 202; returns the event id. */
  async publishOk(token, topic, data, extra = {}) {
    const r = await this.publish(token, { topic, data, ...extra });
    assert.equal(r.status, 202, `publish to ${topic} should return 202, got ${r.status} ${r.text}`);
    assert.equal(typeof r.json?.id, 'string', `publish response should be {"id":"..."}, got ${r.text}`);
    assert.ok(r.json.id.length > 0, 'event id must be non-empty');
    return r.json.id;
  }

  async topics(adminToken) {
    const r = await this.http('GET', '/v1/introspect/topics', { token: adminToken });
    assert.equal(r.status, 200, `GET /v1/introspect/topics: ${r.status} ${r.text}`);
    assert.ok(Array.isArray(r.json?.topics), `topics body: ${r.text}`);
    return r.json.topics;
  }

  async sessions(adminToken) {
    const r = await this.http('GET', '/v1/introspect/sessions', { token: adminToken });
    assert.equal(r.status, 200, `GET /v1/introspect/sessions: ${r.status} ${r.text}`);
    assert.ok(Array.isArray(r.json?.sessions), `sessions body: ${r.text}`);
    return r.json.sessions;
  }

  /** Subscriber count of a pattern in /v1/introspect/topics (0 if absent). */
  async subscribers(adminToken, pattern) {
    const t = (await this.topics(adminToken)).find((x) => x.pattern === pattern);
    return t ? t.subscribers : 0;
  }

  async metrics() {
    const r = await this.http('GET', '/metrics');
    assert.equal(r.status, 200, `GET /metrics: ${r.status} ${r.text}`);
    return parseMetrics(r.text);
  }
}

/** `method path` on `node` with a bearer token and JSON body; asserts the status when one is given. */
export async function api(node, method, p, token, body, status) {
  const r = await node.http(method, p, { token, body });
  if (status !== undefined) assert.equal(r.status, status, `${method} ${p}: ${r.status} ${r.text}`);
  return r;
}

/** Starts a switchyard node with extra flags; resolves once it is listening. `secret: null` starts it without one; `env` adds to its environment. */
export async function startNode(flags = [], { secret = crypto.randomBytes(24).toString('hex'), startTimeout = 15000, env = {} } = {}) {
  const args = ['--host', '127.0.0.1', '--port', '0', ...(secret === null ? [] : ['--jwt-secret', secret]), ...flags];
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const node = new Node(proc, secret, args);
  return node._ready(startTimeout);
}
