// Helpers for the NATS bridge end-to-end tests.
//
// - NatsServer: spawns `nats-server -p <port> -m <monitor port> -a 127.0.0.1`, waits until it is
//   ready, can be SIGKILLed and restarted on the same ports, reads /connz and /subsz.
// - natsClient(): a nats.js connection (named "e2e-...") used to publish/observe envelopes.
// - publishEnvelope(): publishes a msgpack (or JSON, with Content-Type header) envelope.
// - startBridgedNode(): startNode() with --nats and fast reconnect flags.
import { spawn } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { connect as natsConnect, headers as natsHeaders } from 'nats';
import { encode as mpEncode, decode as mpDecode } from '@msgpack/msgpack';
import { startNode, waitUntil, withTimeout } from './node.mjs';

export { mpEncode, mpDecode };

export const NATS_BIN =
  process.env.NATS_SERVER_BIN || (fs.existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server');

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* ignore */
    }
  }
});

export class NatsServer {
  constructor(port, mport, extraArgs = []) {
    this.port = port;
    this.mport = mport;
    this.extraArgs = extraArgs;
    this.url = `nats://127.0.0.1:${port}`;
    this.monitorUrl = `http://127.0.0.1:${mport}`;
    this.proc = null;
    this.log = '';
  }

  /** Allocates free ports (unless given) without starting the server. */
  static async allocate({ port, mport, args = [] } = {}) {
    return new NatsServer(port ?? (await freePort()), mport ?? (await freePort()), args);
  }

  /** Starts on free ports (retrying if a port was grabbed in between). */
  static async start(opts = {}) {
    let lastErr;
    for (let i = 0; i < 5; i++) {
      const ns = await NatsServer.allocate(opts);
      try {
        await ns.start();
        return ns;
      } catch (e) {
        lastErr = e;
        if (opts.port !== undefined) break;
      }
    }
    throw lastErr;
  }

  get running() {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Starts (or restarts) the server on this.port/this.mport; resolves once it accepts clients. */
  async start(timeout = 15000) {
    assert.ok(!this.running, 'nats-server already running');
    const args = ['-p', String(this.port), '-m', String(this.mport), '-a', '127.0.0.1', ...this.extraArgs];
    // a just-killed server's port can be briefly busy: retry a few times on the same port
    const deadline = Date.now() + timeout;
    let lastErr;
    while (Date.now() < deadline) {
      try {
        await this._spawn(args, Math.max(1000, deadline - Date.now()));
        return this;
      } catch (e) {
        lastErr = e;
        if (!/address already in use/i.test(e.message)) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    throw lastErr;
  }

  _spawn(args, timeout) {
    return new Promise((resolve, reject) => {
      const proc = spawn(NATS_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      this.proc = proc;
      live.add(proc);
      let out = '';
      let done = false;
      const finish = (err) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) {
          try {
            proc.kill('SIGKILL');
          } catch {
            /* ignore */
          }
          reject(err);
        } else resolve();
      };
      const onData = (d) => {
        out += d;
        this.log += d;
        if (this.log.length > 100000) this.log = this.log.slice(-50000);
        if (/Server is ready/.test(out)) finish();
      };
      proc.stdout.setEncoding('utf8');
      proc.stderr.setEncoding('utf8');
      proc.stdout.on('data', onData);
      proc.stderr.on('data', onData);
      proc.on('error', (e) => finish(new Error(`failed to spawn ${NATS_BIN}: ${e.message}`)));
      proc.on('exit', (code, signal) => {
        live.delete(proc);
        finish(new Error(`nats-server ${args.join(' ')} exited (code ${code}, signal ${signal}) before ready:\n${out.slice(-2000)}`));
      });
      const timer = setTimeout(
        () => finish(new Error(`nats-server ${args.join(' ')} not ready within ${timeout} ms:\n${out.slice(-2000)}`)),
        timeout,
      );
    });
  }

  /** Kills the server (SIGKILL by default) and waits for it to exit. */
  async kill(signal = 'SIGKILL') {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await withTimeout(exited, 10000, 'nats-server to exit');
  }

  async stop() {
    await this.kill('SIGKILL');
  }

  async monitor(path) {
    const res = await fetch(this.monitorUrl + path);
    assert.equal(res.status, 200, `GET ${path} on the nats monitor: ${res.status}`);
    return res.json();
  }

  /** /connz?subs=1 connections. */
  async connections() {
    const j = await this.monitor('/connz?subs=1&limit=1024');
    return j.connections ?? [];
  }

  /**
   * The nodes' event connections: not the tests' own nats.js clients (named "e2e-...") nor a
   * node's room-store connection (named "...-room-store", JetStream calls only).
   */
  async nodeConnections() {
    return (await this.connections()).filter((c) => !(c.name ?? '').startsWith('e2e-') && !(c.name ?? '').endsWith('-room-store'));
  }

  /**
   * Event subjects (the interest) subscribed by the node's connection (exactly one expected);
   * a subject subscribed twice appears twice. The agent gateway's fixed `switchyard.agents.*`
   * subscriptions are left out.
   */
  async nodeSubjects() {
    const conns = await this.nodeConnections();
    assert.equal(conns.length, 1, `expected exactly one switchyard connection on nats-server, got ${JSON.stringify(conns.map((c) => ({ cid: c.cid, name: c.name, subs: c.subscriptions_list })))}`);
    return [...(conns[0].subscriptions_list ?? [])].filter((s) => s.startsWith('events.')).sort();
  }
}

/** Starts a nats-server on free ports; stops it when the test `t` ends. */
export async function startNats(t, opts = {}) {
  const ns = await NatsServer.start(opts);
  if (t) t.after(() => ns.stop());
  return ns;
}

/** A nats-server with JetStream, its data in a fresh directory; both gone when `t` ends. */
export async function startJetStream(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-js-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return startNats(t, { args: ['-js', '-sd', dir] });
}

/** A nats.js connection named e2e-<name>; closed when the test `t` ends. */
export async function natsClient(t, ns, name = 'client', opts = {}) {
  const nc = await natsConnect({ servers: ns.url, name: `e2e-${name}`, reconnect: false, ...opts });
  if (t)
    t.after(async () => {
      try {
        await withTimeout(nc.close(), 5000, 'nats.js close');
      } catch {
        /* ignore */
      }
    });
  return nc;
}

/**
 * Publishes an envelope on `subject`. `env` is an object (msgpack-encoded, or JSON with
 * { json: true } which also sets Content-Type: application/json), or raw bytes/strings.
 */
export async function publishEnvelope(nc, subject, env, { json = false, headers } = {}) {
  let payload;
  if (env instanceof Uint8Array) payload = env;
  else if (typeof env === 'string') payload = new TextEncoder().encode(env);
  else payload = json ? new TextEncoder().encode(JSON.stringify(env)) : mpEncode(env);
  let h;
  if (json || headers) {
    h = natsHeaders();
    if (json) h.set('Content-Type', 'application/json');
    for (const [k, v] of Object.entries(headers ?? {})) h.set(k, v);
  }
  nc.publish(subject, payload, h ? { headers: h } : undefined);
  await nc.flush();
}

/** A complete valid envelope for `subject`. */
export function envelope(subject, data, extra = {}) {
  return { topic: subject, ts: Date.now(), source: 'e2e', data, ...extra };
}

export const FAST_RECONNECT = ['--nats-reconnect-wait', '100ms', '--nats-reconnect-wait-max', '500ms'];

/** Starts a switchyard node bridged to `natsUrl` (string or NatsServer); stopped when `t` ends. */
export async function startBridgedNode(t, nats, flags = []) {
  const url = typeof nats === 'string' ? nats : nats.url;
  const node = await startNode(['--nats', url, ...FAST_RECONNECT, ...flags]);
  if (t) t.after(() => node.stop());
  return node;
}

export async function healthz(node) {
  const r = await node.http('GET', '/healthz');
  assert.ok(r.json && typeof r.json === 'object', `/healthz body must be JSON, got ${r.status} ${r.text}`);
  return r;
}

/** Waits until /healthz reports bus === want; returns the last response. */
export async function waitBus(node, want, { timeout = 20000 } = {}) {
  let last;
  try {
    return await waitUntil(
      async () => {
        last = await healthz(node);
        return last.json.bus === want ? last : false;
      },
      { timeout, interval: 100, message: `/healthz bus "${want}"` },
    );
  } catch (e) {
    e.message += `; last /healthz: ${last?.status} ${last?.text}`;
    throw e;
  }
}

/** Reads a metric (0 when absent). */
export async function metric(node, name, labels = {}) {
  return (await node.metrics()).get(name, labels) ?? 0;
}
