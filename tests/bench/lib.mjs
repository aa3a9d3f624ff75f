// What the Node.js benchmarks (streams.mjs, reconnect_storm.mjs) share:
// CPU from /proc, medians and percentiles, a pool of concurrent tasks, and
// the coordinator's end of a client process's messages.
import fs from 'node:fs';

export const CLK_TCK = 100; // Linux's USER_HZ, the unit of /proc/<pid>/stat times

/** Runs fn over items, at most n at a time. */
export async function pool(items, n, fn) {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, run));
}

/** utime + stime of a process (or a thread's /proc/<pid>/task/<tid>), in clock ticks. */
export function cpuTicks(pid, dir = `/proc/${pid}`) {
  const stat = fs.readFileSync(`${dir}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of proc(5)
}

/** Busy ticks of the whole machine (all cores): shows load from outside the run. */
export function machineTicks() {
  const [, ...t] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return t[0] + t[1] + t[2] + t[5] + t[6] + t[7]; // user nice system irq softirq steal
}

/** The node's threads: tid -> { name, ticks }; shows which of them bounds it. */
export function threadTicks(pid) {
  const out = new Map();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const dir = `/proc/${pid}/task/${tid}`;
    try {
      out.set(tid, { name: fs.readFileSync(`${dir}/comm`, 'utf8').trim(), ticks: cpuTicks(pid, dir) });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** "name 97%, name 40%, ..." of the threads that used at least 2% of a core. */
export function threadShares(before, after, secs) {
  return [...after]
    .map(([tid, t]) => ({ name: t.name, pct: (100 * (t.ticks - (before.get(tid)?.ticks ?? 0))) / CLK_TCK / secs }))
    .filter((t) => t.pct >= 2)
    .sort((a, b) => b.pct - a.pct)
    .map((t) => `${t.name} ${t.pct.toFixed(0)}%`)
    .join(', ');
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export function percentile(hist, q) {
  const total = hist.reduce((n, [, c]) => n + c, 0);
  let seen = 0;
  for (const [ms, c] of [...hist].sort((a, b) => a[0] - b[0])) {
    seen += c;
    if (seen >= q * total) return ms;
  }
  return NaN;
}

/** Messages from a worker, awaited one type at a time. */
export class Proc {
  constructor(child) {
    this.child = child;
    this.inbox = [];
    this.waiters = [];
    child.on('message', (m) => {
      this.inbox.push(m);
      this.waiters.splice(0).forEach((fn) => fn());
    });
    child.on('exit', (code) => {
      this.exited = code;
      this.waiters.splice(0).forEach((fn) => fn());
    });
  }

  send(m) {
    this.child.send(m);
  }

  /** The next message of `type` (and of round `round`, when given). */
  next(type, timeout, round) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client process ${this.child.pid}: no "${type}" within ${timeout} ms`)), timeout);
      const check = () => {
        const i = this.inbox.findIndex((m) => (m.type === type && (round === undefined || m.round === round)) || m.type === 'failed');
        if (i >= 0) {
          clearTimeout(timer);
          const [m] = this.inbox.splice(i, 1);
          if (m.type === 'failed') reject(new Error(m.error));
          else resolve(m);
        } else if (this.exited !== undefined) {
          clearTimeout(timer);
          reject(new Error(`client process ${this.child.pid} exited (${this.exited})`));
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }
}
