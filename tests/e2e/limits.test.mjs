// File-descriptor exhaustion: a node run with a low `ulimit -n` is flooded
// with more connections than it can hold. It must neither crash nor spin,
// and must serve new clients once the flood goes away.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { BIN, mintToken, waitUntil } from './lib/node.mjs';

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

describe('file descriptor limit', () => {
  it('a node at its file limit keeps running, does not spin, and recovers', { timeout: 60000 }, async (t) => {
    const secret = crypto.randomBytes(16).toString('hex');
    // exec keeps the pid: the shell becomes the node.
    const proc = spawn('bash', ['-c', `ulimit -n 64; exec "${BIN}" --host 127.0.0.1 --port 0 --jwt-secret ${secret} --log-level warn`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += d));
    let exited = null;
    proc.on('exit', (code, signal) => (exited = { code, signal }));
    t.after(() => proc.kill('SIGKILL'));
    const port = await new Promise((resolve, reject) => {
      let out = '';
      proc.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
        if (m) resolve(Number(m[1]));
      });
      proc.on('exit', () => reject(new Error(`node exited: ${stderr}`)));
    });
    const token = mintToken(secret, { sub: 'u_flood', org: 'org_123' });
    const url = `ws://127.0.0.1:${port}/v1/ws?token=${token}`;

    // Flood: far more connections than 64 descriptors allow.
    const flood = [];
    for (let i = 0; i < 150; i++) {
      const ws = new WebSocket(url);
      ws.on('error', () => {});
      flood.push(ws);
    }
    await waitUntil(() => /Too many open files/.test(stderr), { timeout: 15000, message: 'the node to log the file limit' });

    // While at the limit the node must not spin on accept().
    const before = cpuTicks(proc.pid);
    await new Promise((r) => setTimeout(r, 1000));
    const used = cpuTicks(proc.pid) - before; // 100 ticks = one core for 1 s
    assert.ok(used < 50, `node used ${used} of 100 CPU ticks in 1 s at the file limit (spinning?)`);
    assert.equal(exited, null, `node exited at the file limit: ${stderr}`);

    // The flood leaves; a new client is served.
    for (const ws of flood) ws.terminate();
    const welcome = await waitUntil(
      () =>
        new Promise((resolve) => {
          const ws = new WebSocket(url);
          ws.on('error', () => resolve(null));
          ws.on('message', (m) => {
            const f = JSON.parse(m);
            ws.close();
            resolve(f.type === 'welcome' ? f : null);
          });
          setTimeout(() => resolve(null), 2000);
        }),
      { timeout: 20000, message: 'a welcome after the flood' },
    );
    assert.equal(welcome.user, 'u_flood');
    assert.equal(exited, null, `node exited: ${stderr}`);
  });
});
