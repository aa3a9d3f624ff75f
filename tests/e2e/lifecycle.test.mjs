// Process lifecycle: a node that cannot start exits at once with a status
// that says why; SIGTERM stops it within a bound whatever its clients do.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { BIN, startNode, waitUntil, withTimeout } from './lib/node.mjs';

// The stop bound is close_timeout + 5 s (net/main.cpp, stop_grace).
const CLOSE_TIMEOUT_MS = 500;
const STOP_BOUND_MS = CLOSE_TIMEOUT_MS + 5000;

/** Runs switchyard with `args`; resolves with its exit status and stderr. */
function run(args) {
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => (stderr += d));
  proc.stdout.resume();
  return new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal, stderr })));
}

/** A raw TCP client that sends `head` and then reads nothing, answers nothing. */
function rawClient(port, head) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(head);
      resolve(s);
    });
    s.on('error', reject);
  });
}

const upgradeHead = (token) =>
  'GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
  (token ? `Authorization: Bearer ${token}\r\n` : '') +
  '\r\n';

describe('start failures', () => {
  let node;
  after(async () => {
    await node?.stop();
  });

  it('a busy port ends a second node at once with status 1 and names the port', { timeout: 20000 }, async () => {
    node = await startNode([]);
    const second = await withTimeout(
      run(['--host', '127.0.0.1', '--port', String(node.port), '--jwt-secret', 'x']),
      10000,
      'the second node to exit',
    );
    assert.equal(second.code, 1, `exit status; stderr: ${second.stderr}`);
    assert.match(second.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${node.port}: .*Address already in use`));
    const health = await node.http('GET', '/healthz');
    assert.equal(health.status, 200, 'the first node keeps serving');
  });

  it('an address that is not on this host ends the node with status 1', { timeout: 20000 }, async () => {
    // 192.0.2.0/24 is TEST-NET-1: never assigned; binding sends nothing.
    const r = await withTimeout(run(['--host', '192.0.2.1', '--port', '0', '--jwt-secret', 'x']), 10000, 'the node to exit');
    assert.equal(r.code, 1, `exit status; stderr: ${r.stderr}`);
    assert.match(r.stderr, /cannot listen on 192\.0\.2\.1:0: .*Cannot assign requested address/);
  });

  for (const [what, args, message] of [
    ['an unknown flag', ['--no-such-flag'], /unrecognised option '--no-such-flag'/],
    ['a host that is not an IP address', ['--host', 'not an address'], /--host needs an IP address/],
    ['a malformed duration', ['--close-timeout', 'soon'], /--close-timeout needs a duration/],
    ['a malformed origin', ['--allowed-origins', 'https://app.example.com/'], /--allowed-origins: 'https:\/\/app\.example\.com\/' is not an origin/],
  ]) {
    it(`${what} ends the node with status 2 and one line on stderr`, { timeout: 20000 }, async () => {
      const r = await withTimeout(run(['--port', '0', '--jwt-secret', 'x', ...args]), 10000, 'the node to exit');
      assert.equal(r.code, 2, `exit status; stderr: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${JSON.stringify(r.stderr)}`);
    });
  }
});

describe('bounded stop', () => {
  let node;
  after(async () => {
    await node?.stop();
  });

  it('SIGTERM with every kind of client exits 0 within close-timeout + 5 s', { timeout: STOP_BOUND_MS + 15000 }, async (t) => {
    node = await startNode(['--close-timeout', `${CLOSE_TIMEOUT_MS}ms`, '--heartbeat-interval', '100ms', '--heartbeat-timeout', '5s']);
    const token = node.token({ sub: 'u_1', org: 'org_123' });
    const a = await node.connect({ t, token, via: 'header' });
    const b = await node.connect({ t, token, via: 'frame' });
    await a.subscribe('events.org_123.stop.>');
    await b.subscribe('events.org_123.stop.x');
    await b.subscribe('events.org_123.other.*');
    const idle = await node.connect({ t }); // upgraded, never authenticates
    // Half an upgrade request: still an HTTP connection when the signal comes.
    const midHandshake = await rawClient(node.port, upgradeHead(token).slice(0, 60));
    // Upgraded and authenticated, but never reads or answers the close frame:
    // only its close timer ends it.
    const deaf = await rawClient(node.port, upgradeHead(token));
    t.after(() => {
      midHandshake.destroy();
      deaf.destroy();
    });
    await waitUntil(async () => (await node.metrics()).get('switchyard_connections') === 4, { message: '4 WebSocket connections' });
    // Several heartbeat rounds pass with everyone connected.
    await a.waitState((c) => c.pings >= 5, { what: '5 pings' });

    node.proc.kill('SIGTERM');
    const exit = await withTimeout(node.exited, STOP_BOUND_MS, `the node to exit within ${STOP_BOUND_MS} ms of SIGTERM`);
    assert.deepEqual(exit, { code: 0, signal: null }, `exit; stderr tail: ${node.stderr.slice(-2000)}`);
    for (const [name, c] of [['a', a], ['b', b], ['idle', idle]]) {
      const ci = await c.waitClose(1000);
      assert.equal(ci.code, 1001, `${name} close code (reason ${JSON.stringify(ci.reason)})`);
    }
    // Everything was torn down in order, nothing was cut short or abandoned.
    assert.match(node.stderr, /\[node\] \[info\] stopped\n/);
    assert.doesNotMatch(node.stderr, /still open|still running|did not finish/);
  });

  it('a second SIGTERM during the stop exits at once with 128 + 15', { timeout: 30000 }, async (t) => {
    // A long close timeout and a client that never answers the close frame
    // keep the first stop waiting.
    node = await startNode(['--close-timeout', '20s']);
    const token = node.token({ sub: 'u_1', org: 'org_123' });
    const deaf = await rawClient(node.port, upgradeHead(token));
    t.after(() => deaf.destroy());
    await waitUntil(async () => (await node.metrics()).get('switchyard_connections') === 1, { message: 'the WebSocket connection' });
    node.proc.kill('SIGTERM');
    await waitUntil(() => /signal 15: closing 1 connections/.test(node.stderr), { message: 'the node to start its stop' });
    node.proc.kill('SIGTERM');
    const exit = await withTimeout(node.exited, 5000, 'the node to exit after the second SIGTERM');
    assert.deepEqual(exit, { code: 143, signal: null }, `exit; stderr tail: ${node.stderr.slice(-1000)}`);
    assert.match(node.stderr, /second signal during the stop/);
  });
});
