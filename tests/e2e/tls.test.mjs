// TLS on the listener: https and wss with a certificate from files, reloaded
// on SIGHUP (new connections get the new certificate, open ones carry on),
// a broken reload keeps the current certificate, and an unusable certificate
// stops the node at start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { once } from 'node:events';
import WebSocket from 'ws';
import { BIN, Client, startNode, waitUntil } from './lib/node.mjs';

/** A self-signed certificate (P-256 or RSA) for 127.0.0.1, written to `dir`. */
function makeCert(dir, name, { rsa = false } = {}) {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  const keyArgs = rsa ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  execFileSync('openssl', [
    'req', '-x509', ...keyArgs, '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  return { cert, key, pem: fs.readFileSync(cert, 'utf8') };
}

function tmpDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-tls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The certificate the node presents to a new connection. */
async function peerCert(node, ca) {
  const sock = tls.connect({ host: '127.0.0.1', port: node.port, ca, servername: undefined });
  await once(sock, 'secureConnect');
  const cert = sock.getPeerCertificate();
  sock.destroy();
  return cert;
}

function httpsRequest(node, ca, method, urlPath, { token, body } = {}) {
  return new Promise((resolve, reject) => {
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const req = https.request({ host: '127.0.0.1', port: node.port, method, path: urlPath, ca, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

async function wssClient(t, node, ca, token) {
  const ws = new WebSocket(`${node.wsUrl}?token=${encodeURIComponent(token)}`, { ca });
  const client = new Client(ws);
  t.after(() => client.terminate());
  await once(ws, 'open');
  await client.waitFor((f) => f.type === 'welcome', { what: 'the welcome frame over wss' });
  return client;
}

async function subscribed(client, topic) {
  client.send({ type: 'subscribe', id: 's', topic });
  const ok = await client.waitFor((f) => f.id === 's', { what: 'the subscribe reply' });
  assert.equal(ok.type, 'ok', JSON.stringify(ok));
}

test('https and wss serve with the configured certificate', async (t) => {
  const dir = tmpDir(t);
  const a = makeCert(dir, 'first');
  const node = await startNode(['--tls-cert', a.cert, '--tls-key', a.key]);
  t.after(() => node.stop());
  assert.match(node.httpUrl, /^https:/);

  const health = await httpsRequest(node, a.pem, 'GET', '/healthz');
  assert.equal(health.status, 200, health.text);
  assert.equal((await peerCert(node, a.pem)).subject.CN, 'first');

  const client = await wssClient(t, node, a.pem, node.token());
  await subscribed(client, 'events.org_123.>');
  const pub = node.token({ pub: 'events.org_123.>' });
  // Enough events that several leave in one batch (one TLS write).
  const n = 300;
  const sent = [];
  for (let i = 0; i < n; i++)
    sent.push(httpsRequest(node, a.pem, 'POST', '/v1/publish', {
      token: pub, body: { topic: 'events.org_123.tls.batch.e.x', id: `e${i}`, data: { i, pad: 'x'.repeat(200) } },
    }));
  for (const r of await Promise.all(sent)) assert.equal(r.status, 202, r.text);
  await waitUntil(() => client.events().length >= n, { timeout: 20000, message: `${n} events over wss` });
  const ids = new Set(client.events().map((e) => e.id));
  assert.equal(ids.size, n, 'every event exactly once');
});

test('SIGHUP loads a new certificate for new connections; open ones carry on', async (t) => {
  const dir = tmpDir(t);
  const a = makeCert(dir, 'first');
  const b = makeCert(dir, 'second');
  const live = { cert: path.join(dir, 'live.crt'), key: path.join(dir, 'live.key') };
  fs.copyFileSync(a.cert, live.cert);
  fs.copyFileSync(a.key, live.key);
  const node = await startNode(['--tls-cert', live.cert, '--tls-key', live.key]);
  t.after(() => node.stop());
  const client = await wssClient(t, node, a.pem, node.token());
  await subscribed(client, 'events.org_123.>');

  fs.copyFileSync(b.cert, live.cert);
  fs.copyFileSync(b.key, live.key);
  node.proc.kill('SIGHUP');
  await waitUntil(() => /reloaded TLS certificate/.test(node.stderr), { message: 'the reload log line' });
  assert.equal((await peerCert(node, b.pem)).subject.CN, 'second');

  const pub = node.token({ pub: 'events.org_123.>' });
  const r = await httpsRequest(node, b.pem, 'POST', '/v1/publish', {
    token: pub, body: { topic: 'events.org_123.tls.reload.e.x', id: 'after-reload', data: 1 },
  });
  assert.equal(r.status, 202, r.text);
  await client.waitFor((f) => f.type === 'event' && f.id === 'after-reload', { what: 'an event on the old connection' });

  // A broken pair is refused; the node keeps the certificate it has.
  fs.writeFileSync(live.key, 'not a key\n');
  node.proc.kill('SIGHUP');
  await waitUntil(() => /keeping the current certificate/.test(node.stderr), { message: 'the refused reload log line' });
  assert.equal((await peerCert(node, b.pem)).subject.CN, 'second');
});

test('an unusable certificate ends the node at start with a message', async (t) => {
  const dir = tmpDir(t);
  const a = makeCert(dir, 'first');
  const b = makeCert(dir, 'second');
  const r = makeCert(dir, 'rsa', { rsa: true });
  for (const [cert, key, want] of [
    [path.join(dir, 'missing.crt'), a.key, /cannot use TLS certificate/],
    [a.cert, b.key, /key values mismatch/],
    // A key of another type than the certificate's: OpenSSL alone takes it.
    [r.cert, a.key, /does not belong to certificate/],
  ]) {
    const proc = spawn(BIN, ['--port', '0', '--jwt-secret', 's', '--tls-cert', cert, '--tls-key', key]);
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += d));
    const [code] = await once(proc, 'exit');
    assert.notEqual(code, 0);
    assert.match(stderr, want);
  }
  const proc = spawn(BIN, ['--port', '0', '--jwt-secret', 's', '--tls-cert', a.cert]);
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const [code] = await once(proc, 'exit');
  assert.equal(code, 2);
  assert.match(stderr, /--tls-cert and --tls-key go together/);
});
