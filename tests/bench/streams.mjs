#!/usr/bin/env node
// streams: token streaming through Switchyard's rooms. Starts a node, makes
// R private rooms, each with W watcher users (participants, one user id per
// watcher: the node allows 32 connections per user) and an echo agent that
// writes T tokens/s (delay_ms = 1000/T); every watcher subscribes to its
// room's message_stream topic. One unmeasured reply per room warms the node
// up, then each round posts a message in every room long enough to stream
// through the whole measured window (--duration seconds) and measures:
// tokens delivered/s to all watchers, token latency (receive time - the
// event's ts, which the node stamps when it publishes the token; one clock,
// millisecond resolution), node and generator CPU over the window (from
// /proc/<pid>/stat), events carrying several tokens (coalesced for a lagging
// watcher) and the node's switchyard_stream_tokens_coalesced_total, and
// disconnects. Every watcher must get every word of every reply once, in
// order; the exit code is 1 when one did not (so a tiny run is the ctest
// smoke test) and never depends on speed.
//
// Watchers are spread over --procs client processes (default: one per 15k
// connections, each process may open at most 20,000 files). `ws` comes from
// the e2e suite's node_modules (`npm ci` in tests/e2e).
//
//   node tests/bench/streams.mjs --rooms 100 --watchers 10 --tps 50 \
//     [--duration 10] [--rounds 3] [--procs N] [--switchyard build/switchyard]
//     [--node-args="--io-threads 2"] [--json FILE]
import { fork, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CLK_TCK, Proc, cpuTicks, machineTicks, median, percentile, pool, threadShares, threadTicks } from './lib.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const repo = path.resolve(here, '../..');
const WebSocket = createRequire(path.join(repo, 'tests/e2e/package.json'))('ws');
const ORG = 'org_bench';
const topicOf = (room) => `events.${ORG}.conversations.conversation.message_stream.${room}`;
const CONNS_PER_PROC = 15000;

/** The words of a reply, each one distinct so that order and duplicates show. */
const textOf = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${i}`).join(' ');

/** Tokens in a stream event's `token`: one word each, several when coalesced. */
const wordsIn = (token) => token.split(' ').filter((w) => w !== '').length;

// ---------------------------------------------------------------------------
// Client process: holds watchers, checks their replies, measures latency.
// ---------------------------------------------------------------------------

function worker() {
  let watchers = [];
  let round = null;
  let stopping = false;
  let disconnects = 0;

  const newRound = (msg) => ({
    id: msg.id,
    text: msg.text,
    windowStart: msg.windowStart,
    windowEnd: msg.windowEnd,
    tokens: 0, // in the window
    coalesced: 0, // events with several tokens, whole round
    latency: new Map(), // ms -> events in the window
    finished: 0,
    firstDone: Infinity,
    errors: [],
  });

  const fail = (w, why) => {
    if (w.error) return;
    w.error = why;
    round.errors.push(`${w.id}: ${why}`);
    if (w.done) return; // counted as finished already
    round.finished++;
    checkFinished();
  };

  const checkFinished = () => {
    if (round.finished === watchers.length) process.send({ type: 'finished', round: round.id });
  };

  function onStream(w, f) {
    const d = f.data;
    if (w.error) return;
    if (w.mid === null) w.mid = d.message_id;
    else if (d.message_id !== w.mid) return fail(w, `a second reply ${d.message_id} after ${w.mid}`);
    if (d.index <= w.last) return fail(w, `index ${d.index} after ${w.last}`);
    w.last = d.index;
    if (d.text !== undefined) {
      // A catch-up: only a watcher that joined mid-reply gets one.
      if (w.text !== '') return fail(w, 'a catch-up after tokens');
      w.text = d.text;
    } else if (d.token) {
      w.text += d.token;
      const now = Date.now();
      const n = wordsIn(d.token);
      if (n > 1) round.coalesced++;
      if (now >= round.windowStart && now < round.windowEnd) {
        round.tokens += n;
        const ms = now - f.ts;
        round.latency.set(ms, (round.latency.get(ms) ?? 0) + 1);
      }
    }
    if (!d.done) return;
    if (d.state !== 'complete') return fail(w, `reply ended ${d.state} ${d.reason ?? ''}`);
    if (w.text !== round.text) {
      const got = w.text.split(' ');
      const want = round.text.split(' ');
      const at = want.findIndex((x, i) => got[i] !== x);
      return fail(w, `text differs at word ${at}: got ${JSON.stringify(got.slice(at, at + 3))}, want ${JSON.stringify(want.slice(at, at + 3))} (${got.length} words, want ${want.length})`);
    }
    w.done = true;
    round.firstDone = Math.min(round.firstDone, Date.now());
    round.finished++;
    checkFinished();
  }

  function open(w, url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${w.token}` }, perMessageDeflate: false });
      w.ws = ws;
      ws.on('message', (data) => {
        const f = JSON.parse(data);
        if (f.type === 'event') onStream(w, f);
        else if (f.type === 'welcome') ws.send(JSON.stringify({ type: 'subscribe', id: 's', topic: topicOf(w.room) }));
        else if (f.type === 'ok' && f.id === 's') {
          w.subscribed = true;
          resolve();
        } else if (!w.subscribed) reject(new Error(`${w.id}: ${data}`));
        else if (round) fail(w, `unexpected frame ${data}`);
      });
      ws.on('error', reject);
      ws.on('close', (code) => {
        reject(new Error(`${w.id}: closed (${code}) before subscribing`));
        if (stopping) return;
        disconnects++;
        if (round && !w.done) fail(w, `disconnected (${code})`);
      });
    });
  }

  process.on('message', async (msg) => {
    if (msg.type === 'connect') {
      watchers = msg.watchers.map((w) => ({ ...w, ws: null, subscribed: false }));
      try {
        await pool(watchers, 200, (w) => open(w, msg.url));
        process.send({ type: 'connected' });
      } catch (e) {
        process.send({ type: 'failed', error: e.message });
      }
    } else if (msg.type === 'round') {
      round = newRound(msg);
      for (const w of watchers) Object.assign(w, { mid: null, last: -1, text: '', done: false, error: null });
      process.send({ type: 'ready' });
    } else if (msg.type === 'results') {
      process.send({
        type: 'results',
        tokens: round.tokens,
        coalesced: round.coalesced,
        latency: [...round.latency],
        firstDone: round.firstDone,
        ok: watchers.filter((w) => w.done && !w.error).length,
        errors: [...round.errors, ...watchers.filter((w) => !w.done && !w.error).map((w) => `${w.id}: unfinished at index ${w.last}`)].slice(0, 10),
        disconnects,
      });
    } else if (msg.type === 'stop') {
      stopping = true;
      for (const w of watchers) w.ws?.terminate();
      process.exit(0);
    }
  });
}

// ---------------------------------------------------------------------------
// Coordinator: the node, the rooms, the rounds, the figures.
// ---------------------------------------------------------------------------

async function coordinator(opts) {
  const R = opts.rooms;
  const W = opts.watchers;
  const T = opts.tps;
  const D = opts.duration;
  const delay = Math.round(1000 / T);
  const conns = R * W;
  const procs = opts.procs || Math.max(1, Math.ceil(conns / CONNS_PER_PROC));
  process.env.SWITCHYARD_BIN = path.resolve(opts.switchyard);
  const { startNode } = await import('../e2e/lib/node.mjs');
  // The measured replies must stream past the window's end; the longest one
  // must fit in a message.
  const longest = textOf('w', T * (D + 30)).length;
  const nodeArgs = [...opts.nodeArgs, '--max-message-text', String(Math.max(16384, longest))];
  const node = await startNode(nodeArgs);
  const workers = [];
  const say = (s) => process.stderr.write(`streams: ${s}\n`);
  try {
    const api = async (method, p, token, body) => {
      const r = await node.http(method, p, { token, body });
      if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${r.text}`);
      return r.json;
    };
    const base = node.claims({ sub: 'poster', org: ORG, ttl: '2h' });
    const poster = node.sign(base);
    say(`${R} rooms, ${W} watchers each, ${T} tokens/s (delay_ms ${delay}); ${conns} connections over ${procs} client process(es)`);
    const rooms = [];
    await pool(Array.from({ length: R }, (_, i) => i), 16, async (i) => {
      const room = (await api('POST', '/v1/rooms', poster, { name: `bench-${i}`, private: true })).id;
      await api('POST', `/v1/rooms/${room}/participants`, poster, {
        id: 'agent_echo', kind: 'agent', behavior: 'echo', auto_respond: 'always', config: { delay_ms: delay },
      });
      for (let k = 0; k < W; k++) await api('POST', `/v1/rooms/${room}/participants`, poster, { id: `w${i}_${k}`, kind: 'user' });
      rooms[i] = room;
    });
    const watchers = rooms.flatMap((room, i) =>
      Array.from({ length: W }, (_, k) => ({ id: `w${i}_${k}`, room, token: node.sign({ ...base, sub: `w${i}_${k}` }) })),
    );
    for (let p = 0; p < procs; p++) {
      const child = fork(new URL(import.meta.url).pathname, ['--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      workers.push(new Proc(child));
    }
    const started = Date.now();
    workers.forEach((w, p) => w.send({ type: 'connect', url: node.wsUrl, watchers: watchers.filter((_, i) => i % procs === p) }));
    await Promise.all(workers.map((w) => w.next('connected', 120000)));
    say(`connected and subscribed in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const coalescedMetric = async () => (await node.metrics()).get('switchyard_stream_tokens_coalesced_total') ?? 0;

    /** One reply in every room; figures over [windowStart, windowEnd) when `measure`. */
    let roundId = 0;
    async function round(text, { measure, lead = 0 }) {
      const id = ++roundId;
      const words = text.split(' ').length;
      const windowStart = Date.now() + lead;
      const windowEnd = windowStart + D * 1000;
      workers.forEach((w) => w.send({ type: 'round', id, text, windowStart, windowEnd }));
      await Promise.all(workers.map((w) => w.next('ready', 10000)));
      const metric0 = await coalescedMetric();
      const pids = [node.proc.pid, ...workers.map((w) => w.child.pid)];
      let cpu0, cpu1, self0, self1, threads0, threads1, busy0, busy1;
      const sample = () => [pids.map((pid) => cpuTicks(pid)), process.cpuUsage(), threadTicks(node.proc.pid), machineTicks()];
      const sampled = measure
        ? Promise.all([
            new Promise((r) => setTimeout(() => r(([cpu0, self0, threads0, busy0] = sample())), windowStart - Date.now())),
            new Promise((r) => setTimeout(() => r(([cpu1, self1, threads1, busy1] = sample())), windowEnd - Date.now())),
          ])
        : null;
      const postStart = Date.now();
      await pool(rooms, 32, (room) => api('POST', `/v1/rooms/${room}/messages`, poster, { text }));
      const posted = Date.now();
      await sampled;
      // A round whose replies do not all end is reported with its
      // unfinished watchers (the results), not abandoned.
      const finishing = (words / T) * 3000 + 60000;
      await Promise.all(workers.map((w) => w.next('finished', finishing, id).catch((e) => say(e.message))));
      const res = [];
      for (const w of workers) {
        w.send({ type: 'results' });
        res.push(await w.next('results', 10000));
      }
      const errors = res.flatMap((r) => r.errors);
      const out = {
        postSeconds: (posted - postStart) / 1000,
        ok: res.reduce((n, r) => n + r.ok, 0),
        errors,
        disconnects: res.reduce((n, r) => n + r.disconnects, 0),
        coalescedEvents: res.reduce((n, r) => n + r.coalesced, 0),
        coalescedMetric: (await coalescedMetric()) - metric0,
      };
      if (!measure) return out;
      const secs = (windowEnd - windowStart) / 1000;
      const latency = res.flatMap((r) => r.latency);
      const selfUs = self1.user - self0.user + self1.system - self0.system;
      const pct = (ticks) => (100 * ticks) / CLK_TCK / secs;
      const nodeCpu = pct(cpu1[0] - cpu0[0]);
      const genCpu = pct(cpu1.slice(1).reduce((a, b) => a + b) - cpu0.slice(1).reduce((a, b) => a + b)) + selfUs / 1e4 / secs;
      const machineCpu = pct(busy1 - busy0);
      return {
        ...out,
        tokensPerS: res.reduce((n, r) => n + r.tokens, 0) / secs,
        p50: percentile(latency, 0.5),
        p99: percentile(latency, 0.99),
        max: percentile(latency, 1),
        nodeCpu,
        nodeThreads: threadShares(threads0, threads1, secs),
        genCpu,
        machineCpu,
        // Busy time outside the node and the generator: the kernel's share
        // of loopback, or another program that spoils the figures.
        otherCpu: machineCpu - nodeCpu - genCpu,
        // The window must lie within every reply: posted before it, ended after it.
        windowInside: posted <= windowStart && Math.min(...res.map((r) => r.firstDone)) >= windowEnd,
      };
    }

    const warm = await round(textOf('warm', Math.max(10, T)), { measure: false });
    say(`warm-up: ${warm.ok}/${conns} watchers got the whole reply; posting took ${warm.postSeconds.toFixed(2)} s`);
    const lead = Math.ceil(warm.postSeconds * 2 * 1000) + 1000;
    // Nominal rate; the agent's real one is a little lower (each delay starts
    // once the previous token was published), so these words last longer.
    const text = textOf('w', Math.ceil((T * (lead + D * 1000 + 2000)) / 1000));
    const rounds = [warm];
    const measured = [];
    for (let i = 1; i <= opts.rounds; i++) {
      const r = await round(text, { measure: true, lead });
      rounds.push(r);
      measured.push(r);
      say(
        `round ${i}: ${Math.round(r.tokensPerS).toLocaleString('en-US')} tokens/s (offered ${(R * W * T).toLocaleString('en-US')}), ` +
          `p50 ${r.p50} ms, p99 ${r.p99} ms, max ${r.max} ms, node CPU ${r.nodeCpu.toFixed(0)}%, generator CPU ${r.genCpu.toFixed(0)}%, machine ${r.machineCpu.toFixed(0)}% (other ${r.otherCpu.toFixed(0)}%), ` +
          `coalesced events ${r.coalescedEvents} (metric +${r.coalescedMetric}), disconnects ${r.disconnects}, ` +
          `watchers whole ${r.ok}/${conns}${r.windowInside ? '' : ', WINDOW NOT INSIDE THE REPLIES'}; node threads: ${r.nodeThreads}`,
      );
    }
    const errors = rounds.flatMap((r) => r.errors);
    const pick = (key) => {
      const xs = measured.map((r) => r[key]);
      return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
    };
    let commit = '?';
    try {
      commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      // not a git checkout: the figures stand without it
    }
    const summary = {
      kind: 'summary',
      commit,
      rooms: R,
      watchers: W,
      tps: T,
      duration: D,
      rounds: opts.rounds,
      procs,
      node_args: opts.nodeArgs.join(' '),
      connections: conns,
      offered_tokens_per_s: R * W * T,
      tokens_per_s: pick('tokensPerS'),
      p50_ms: pick('p50'),
      p99_ms: pick('p99'),
      max_ms: pick('max'),
      node_cpu: pick('nodeCpu'),
      gen_cpu: pick('genCpu'),
      node_threads: measured[measured.length - 1].nodeThreads,
      machine_cpu: pick('machineCpu'),
      other_cpu: pick('otherCpu'),
      coalesced_events: rounds.reduce((n, r) => n + r.coalescedEvents, 0),
      coalesced_metric: rounds.reduce((n, r) => n + r.coalescedMetric, 0),
      disconnects: Math.max(...rounds.map((r) => r.disconnects)),
      replies_checked: rounds.length * conns,
      replies_whole: rounds.reduce((n, r) => n + r.ok, 0),
      window_outside_rounds: measured.filter((r) => !r.windowInside).length,
      errors: errors.slice(0, 10),
    };
    const span = ({ median: m, min, max }, f = (x) => x.toFixed(0)) => `${f(m)} [${f(min)}-${f(max)}]`;
    console.log(
      `streams --rooms ${R} --watchers ${W} --tps ${T} --duration ${D} --rounds ${opts.rounds}: ` +
        `${span(summary.tokens_per_s, (x) => Math.round(x).toLocaleString('en-US'))} tokens/s of ${summary.offered_tokens_per_s.toLocaleString('en-US')} offered, ` +
        `p50 ${span(summary.p50_ms)} ms, p99 ${span(summary.p99_ms)} ms, node CPU ${span(summary.node_cpu)}%, ` +
        `generator CPU ${span(summary.gen_cpu)}%, coalesced events ${summary.coalesced_events} (metric ${summary.coalesced_metric}), ` +
        `disconnects ${summary.disconnects}, replies whole ${summary.replies_whole}/${summary.replies_checked}`,
    );
    for (const e of summary.errors) console.log(`  ${e}`);
    if (opts.json) fs.appendFileSync(opts.json, JSON.stringify(summary) + '\n');
    return summary.replies_whole === summary.replies_checked && summary.disconnects === 0 ? 0 : 1;
  } finally {
    for (const w of workers) if (w.exited === undefined) w.send({ type: 'stop' });
    await node.stop();
  }
}

const { values } = parseArgs({
  options: {
    worker: { type: 'boolean' },
    rooms: { type: 'string', default: '100' },
    watchers: { type: 'string', default: '10' },
    tps: { type: 'string', default: '50' },
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    procs: { type: 'string', default: '0' },
    switchyard: { type: 'string', default: process.env.SWITCHYARD_BIN || path.join(repo, 'build/switchyard') },
    'node-args': { type: 'string', default: '' },
    json: { type: 'string' },
  },
});
if (values.worker) {
  worker();
} else {
  const num = (k) => {
    const n = Number(values[k]);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${k} must be a whole number, got ${values[k]}`);
    return n;
  };
  const opts = {
    rooms: num('rooms'),
    watchers: num('watchers'),
    tps: num('tps'),
    duration: num('duration'),
    rounds: num('rounds'),
    procs: num('procs'),
    switchyard: values.switchyard,
    nodeArgs: values['node-args'].split(' ').filter(Boolean),
    json: values.json,
  };
  process.exitCode = await coordinator(opts);
}
