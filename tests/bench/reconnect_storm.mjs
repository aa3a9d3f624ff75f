#!/usr/bin/env node
// reconnect_storm: N clients recovering what they missed, all at once. A
// node with --history on a nats-server with JetStream; --clients clients,
// each subscribed to one of --topics exact topics, learn their position
// (one event per topic), disconnect; --missed events per topic are
// published; then every client reconnects at once and subscribes with
// `recover` from its position. Measured per round: the time from the storm's
// start until every client has its `ok` with `recovered: true` (and its
// median), node and nats-server CPU over the storm, and the latency of --live
// other clients on another topic, fed --live-rate events/s throughout (p50 and
// p99 before the storm and during it). Every storm client must get exactly
// the events it missed, in order, with increasing `seq`, then `recovered:
// true`; the exit code is 1 when one did not, and never depends on speed.
//
// One unmeasured round warms the node, nats-server and the clients up; the
// figures are medians over --rounds rounds with their min-max. Clients are
// spread over --procs client processes (default: one per 5k connections,
// at least 2; each process may open at most 20,000 files), each with at most
// --connecting connection attempts in flight (past the node's listen backlog,
// SYNs are dropped and retried a second later, which measures the kernel's
// retry timer rather than the node). `ws` and `nats` come from the e2e
// suite's node_modules (`npm ci` in tests/e2e).
//
//   node tests/bench/reconnect_storm.mjs [--clients 10000] [--topics 100]
//     [--missed 100] [--live 100] [--live-rate 200] [--rounds 3] [--procs N]
//     [--connecting 500] [--switchyard build/switchyard] [--node-args="..."]
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CLK_TCK, Proc, cpuTicks, machineTicks, median, percentile, pool } from './lib.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const repo = path.resolve(here, '../..');
const WebSocket = createRequire(path.join(repo, 'tests/e2e/package.json'))('ws');
const ORG = 'org_bench';
const stormTopic = (i) => `events.${ORG}.storm.item.changed.t${i}`;
const LIVE_TOPIC = `events.${ORG}.live.item.changed.l1`;
const CONNS_PER_PROC = 5000;
const usNow = () => Number(process.hrtime.bigint() / 1000n); // CLOCK_MONOTONIC, one clock for every process

// ---------------------------------------------------------------------------
// Client process: storm clients and live clients.
// ---------------------------------------------------------------------------

function worker() {
  let url = null;
  let storm = []; // { token, topic, ws, seq, epoch, got, ... }
  let live = [];
  let liveHist = null; // ms (rounded up to 0.1) -> count, while measuring
  let disconnects = 0;

  const connect = (c, onFrame) =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url}?token=${c.token}`, { perMessageDeflate: false, handshakeTimeout: 60000 });
      c.ws = ws;
      ws.on('message', (data) => onFrame(JSON.parse(data)));
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.on('close', () => {
        if (!c.leaving) disconnects++;
      });
    });

  /** A storm client subscribing with `recover` (or plainly, the first
   * time: its first event is its position); resolves at the `ok`. */
  const subscribe = (c, recover) =>
    new Promise((resolve, reject) => {
      c.got = [];
      c.onFrame = (f) => {
        if (f.type === 'event') {
          c.got.push(f);
          if (!recover) {
            c.seq = f.seq;
            c.epoch = f.epoch;
            c.positioned?.();
          }
        } else if (f.type === 'ok' && f.id === 's') {
          if (recover) {
            c.done = usNow();
            c.ok = f;
          }
          resolve();
        } else if (f.type === 'error') {
          reject(new Error(`${c.topic}: ${JSON.stringify(f)}`));
        }
      };
      const frame = { type: 'subscribe', id: 's', topic: c.topic };
      if (recover) frame.recover = { since: c.seq, epoch: c.epoch };
      c.ws.send(JSON.stringify(frame));
    });

  const onLive = (f) => {
    if (f.type !== 'event' || liveHist === null) return;
    const ms = Math.ceil((usNow() - f.data.t) / 100) / 10;
    liveHist.set(ms, (liveHist.get(ms) ?? 0) + 1);
  };

  /** Checks a recovered client: exactly `missed` events after its position, in order. */
  const check = (c, missed) => {
    const seqs = c.got.map((f) => f.seq);
    const errors = [];
    if (!c.ok || c.ok.recovered !== true) errors.push(`not recovered: ${JSON.stringify(c.ok)}`);
    if (c.got.length !== missed) errors.push(`${c.got.length} events, not ${missed}`);
    if (seqs.some((s, i) => s <= (i === 0 ? c.seq : seqs[i - 1]))) errors.push('seq not increasing past the position');
    const ns = c.got.map((f) => f.data.n);
    if (ns.some((n, i) => n !== i)) errors.push('events out of order or missing');
    return errors;
  };

  process.on('message', async (msg) => {
    try {
      if (msg.type === 'open') {
        url = msg.url;
        storm = msg.storm.map((x) => ({ ...x }));
        live = msg.live.map((x) => ({ ...x }));
        await pool(live, 50, async (c) => {
          await connect(c, onLive);
          c.ws.send(JSON.stringify({ type: 'subscribe', id: 's', topic: LIVE_TOPIC }));
        });
        await pool(storm, msg.connecting, async (c) => {
          await connect(c, (f) => c.onFrame?.(f));
          await subscribe(c, false);
        });
        process.send({ type: 'subscribed' });
      } else if (msg.type === 'positioned?') {
        await Promise.all(storm.map((c) => (c.seq !== undefined ? null : new Promise((r) => (c.positioned = r)))));
        process.send({ type: 'positioned' });
      } else if (msg.type === 'drop') {
        await Promise.all(
          storm.map(
            (c) =>
              new Promise((resolve) => {
                c.leaving = true;
                c.ws.once('close', resolve);
                c.ws.close();
              }),
          ),
        );
        process.send({ type: 'dropped' });
      } else if (msg.type === 'measure-live') {
        liveHist = new Map();
      } else if (msg.type === 'live-figures') {
        process.send({ type: 'live', hist: [...(liveHist ?? new Map())] });
        liveHist = null;
      } else if (msg.type === 'reconnect') {
        const start = msg.start;
        await pool(storm, msg.connecting, async (c) => {
          c.leaving = false;
          c.ok = null;
          await connect(c, (f) => c.onFrame?.(f));
          await subscribe(c, true);
        });
        const errors = [];
        for (const c of storm) for (const e of check(c, msg.missed)) if (errors.length < 5) errors.push(`${c.topic}: ${e}`);
        const bad = storm.filter((c) => check(c, msg.missed).length > 0).length;
        const times = storm.map((c) => (c.done - start) / 1000);
        // The next round's position: the last event recovered.
        for (const c of storm) if (c.got.length) ({ seq: c.seq, epoch: c.epoch } = c.got.at(-1));
        process.send({ type: 'recovered', times, bad, errors, disconnects });
      } else if (msg.type === 'close') {
        for (const c of [...storm, ...live]) {
          c.leaving = true;
          c.ws?.terminate();
        }
        process.send({ type: 'closed' });
        process.exit(0);
      }
    } catch (e) {
      process.send({ type: 'failed', error: e.stack ?? String(e) });
    }
  });
}

// ---------------------------------------------------------------------------
// Coordinator: nats-server, the node, the publisher, the rounds.
// ---------------------------------------------------------------------------

async function coordinator(opts) {
  process.env.SWITCHYARD_BIN = path.resolve(opts.switchyard);
  const { NatsServer, natsClient, mpEncode } = await import('../e2e/lib/nats.mjs');
  const { startNode } = await import('../e2e/lib/node.mjs');
  const say = (s) => process.stderr.write(`reconnect_storm: ${s}\n`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-storm-js-'));
  const nats = await NatsServer.start({ args: ['-js', '-sd', dir] });
  const node = await startNode(['--nats', nats.url, '--history', '--log-level', 'warn', '--max-inbound-rate', '10000', ...opts.nodeArgs]);
  const nc = await natsClient(null, nats, 'storm-publisher');
  const workers = [];
  let failed = false;
  let liveTimer = null;
  try {
    const conns = opts.clients + opts.live;
    const procs = opts.procs || Math.max(2, Math.ceil(conns / CONNS_PER_PROC));
    const tokenOf = (sub) => node.token({ sub, org: ORG, ttl: '4h' });
    const storm = Array.from({ length: opts.clients }, (_, i) => ({ token: tokenOf(`s${i}`), topic: stormTopic(i % opts.topics) }));
    const live = Array.from({ length: opts.live }, (_, i) => ({ token: tokenOf(`l${i}`) }));
    for (let p = 0; p < procs; p++) {
      const child = fork(new URL(import.meta.url).pathname, ['--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      workers.push(new Proc(child));
    }
    const all = async (msg, reply, timeout = 600000) => {
      workers.forEach((w) => w.send(msg));
      return Promise.all(workers.map((w) => w.next(reply, timeout)));
    };
    say(`${opts.clients} storm clients on ${opts.topics} topics, ${opts.live} live clients, ${procs} client processes`);
    workers.forEach((w, p) =>
      w.send({
        type: 'open',
        url: node.wsUrl,
        storm: storm.filter((_, i) => i % procs === p),
        live: live.filter((_, i) => i % procs === p),
        connecting: opts.connecting,
      }),
    );
    await Promise.all(workers.map((w) => w.next('subscribed', 600000)));
    const publish = (topic, data) => nc.publish(topic, mpEncode({ topic, ts: Date.now(), source: 'bench', data }));
    // Live events all along: their own latency is the effect of the storm.
    liveTimer = setInterval(() => publish(LIVE_TOPIC, { t: usNow() }), 1000 / opts.liveRate);
    for (let i = 0; i < opts.topics; i++) publish(stormTopic(i), { n: -1 });
    await nc.flush();
    await all({ type: 'positioned?' }, 'positioned');
    const rows = [];
    for (let round = 0; round <= opts.rounds; round++) {
      await all({ type: 'drop' }, 'dropped');
      for (let n = 0; n < opts.missed; n++) for (let i = 0; i < opts.topics; i++) publish(stormTopic(i), { n });
      await nc.flush();
      // Until JetStream stored them all (the node's live copies say so too).
      await new Promise((r) => setTimeout(r, 500));
      workers.forEach((w) => w.send({ type: 'measure-live' }));
      await new Promise((r) => setTimeout(r, opts.baseline * 1000));
      const quiet = await all({ type: 'live-figures' }, 'live');
      const before = [cpuTicks(node.proc.pid), cpuTicks(nats.proc.pid), machineTicks(), process.cpuUsage()];
      const start = usNow();
      workers.forEach((w) => w.send({ type: 'measure-live' }));
      const results = await all({ type: 'reconnect', start, missed: opts.missed, connecting: opts.connecting }, 'recovered');
      const secs = (usNow() - start) / 1e6;
      const during = await all({ type: 'live-figures' }, 'live');
      const after = [cpuTicks(node.proc.pid), cpuTicks(nats.proc.pid), machineTicks(), process.cpuUsage()];
      const times = results.flatMap((r) => r.times).sort((a, b) => a - b);
      const bad = results.reduce((n, r) => n + r.bad, 0);
      const errors = results.flatMap((r) => r.errors);
      const disconnects = results.reduce((n, r) => n + r.disconnects, 0);
      const hist = (xs) => {
        const m = new Map();
        for (const x of xs) for (const [ms, c] of x.hist) m.set(ms, (m.get(ms) ?? 0) + c);
        return [...m];
      };
      const pct = (ticks) => (100 * ticks) / CLK_TCK / secs;
      const row = {
        round,
        all_ms: times.at(-1),
        median_ms: median(times),
        node_cpu: pct(after[0] - before[0]),
        nats_cpu: pct(after[1] - before[1]),
        machine_cpu: pct(after[2] - before[2]),
        quiet_p50: percentile(hist(quiet), 0.5),
        quiet_p99: percentile(hist(quiet), 0.99),
        storm_p50: percentile(hist(during), 0.5),
        storm_p99: percentile(hist(during), 0.99),
        bad,
        disconnects,
      };
      say(
        `round ${round}${round === 0 ? ' (warm-up)' : ''}: all recovered in ${row.all_ms.toFixed(0)} ms (median client ${row.median_ms.toFixed(0)} ms); ` +
          `node ${row.node_cpu.toFixed(0)}% nats-server ${row.nats_cpu.toFixed(0)}% machine ${row.machine_cpu.toFixed(0)}% of a core; ` +
          `live p50/p99 ${row.quiet_p50}/${row.quiet_p99} ms quiet, ${row.storm_p50}/${row.storm_p99} ms in the storm; ` +
          `${bad} clients wrong, ${disconnects} disconnects`,
      );
      for (const e of errors) say(`  ${e}`);
      if (bad > 0) failed = true;
      if (round > 0) rows.push(row);
    }
    const span = (key, digits = 0) => {
      const xs = rows.map((r) => r[key]);
      return `${median(xs).toFixed(digits)} [${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}]`;
    };
    console.log(`${opts.clients} clients x ${opts.missed} events (${opts.topics} topics), ${rows.length} rounds, medians [min-max]:`);
    console.log(`  time to all recovered      ${span('all_ms')} ms (median client ${span('median_ms')} ms)`);
    console.log(`  node CPU over the storm    ${span('node_cpu')}% of a core; nats-server ${span('nats_cpu')}%; machine ${span('machine_cpu')}%`);
    console.log(`  live p99 (${opts.live} clients, ${opts.liveRate}/s)  quiet ${span('quiet_p99', 1)} ms, in the storm ${span('storm_p99', 1)} ms (p50 ${span('quiet_p50', 1)} / ${span('storm_p50', 1)} ms)`);
    console.log(`  wrong recoveries ${rows.reduce((n, r) => n + r.bad, 0)}, disconnects ${rows.reduce((n, r) => n + r.disconnects, 0)}`);
  } finally {
    clearInterval(liveTimer);
    await Promise.allSettled(workers.map((w) => (w.send({ type: 'close' }), w.next('closed', 10000))));
    await nc.close();
    await node.stop();
    await nats.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

if (process.argv.includes('--worker')) {
  worker();
} else {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '10000' },
      topics: { type: 'string', default: '100' },
      missed: { type: 'string', default: '100' },
      live: { type: 'string', default: '100' },
      'live-rate': { type: 'string', default: '200' },
      baseline: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '3' },
      procs: { type: 'string', default: '0' },
      connecting: { type: 'string', default: '500' },
      switchyard: { type: 'string', default: path.join(repo, 'build/switchyard') },
      'node-args': { type: 'string', default: '' },
    },
  });
  await coordinator({
    clients: Number(values.clients),
    topics: Number(values.topics),
    missed: Number(values.missed),
    live: Number(values.live),
    liveRate: Number(values['live-rate']),
    baseline: Number(values.baseline),
    rounds: Number(values.rounds),
    procs: Number(values.procs),
    connecting: Number(values.connecting),
    switchyard: values.switchyard,
    nodeArgs: values['node-args'].split(' ').filter((x) => x !== ''),
  });
}
