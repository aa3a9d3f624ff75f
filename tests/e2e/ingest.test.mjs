// Webhooks from outside: POST /v1/ingest/{source} on a node whose config file
// holds a GitHub-style source (X-Hub-Signature-256, hex, `sha256=`) and a
// timestamped one (base64 over `<timestamp>.<body>`). A correctly signed
// webhook reaches WebSocket subscribers as an event of the mapped topic, on
// the in-process bus and over NATS; every refusal is answered (401, 404,
// 405, 413, 422, 503) and delivers nothing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startNode, nowSec, waitUntil } from './lib/node.mjs';
import { startNats, startBridgedNode, natsClient, mpDecode, waitBus, metric } from './lib/nats.mjs';

const T = { timeout: 60000 };

const GITHUB_SECRET = 'It is a secret to everybody';
const BILLING_SECRET = 'billing-secret-0123456789';

/** A config file with both sources; the billing secret comes from a file. */
function writeConfig() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-ingest-'));
  const secretFile = path.join(dir, 'billing.secret');
  fs.writeFileSync(secretFile, `${BILLING_SECRET}\n`);
  const file = path.join(dir, 'node.ini');
  fs.writeFileSync(
    file,
    `# webhook sources of the ingest e2e test
max-frame-size = 4096
max-ingest-body = 16384

[ingest.github]
org = org_123
secret = ${GITHUB_SECRET}
signature-header = X-Hub-Signature-256
signature-prefix = sha256=
event = {header.X-GitHub-Event}
resource = repository
resource-id = {body.repository.id}
id = {header.X-GitHub-Delivery}

[ingest.billing]
org = org_123
secret-file = ${secretFile}
signature-header = X-Billing-Signature
signature-encoding = base64
timestamp-header = X-Billing-Timestamp
tolerance = 2m
resource = {body.type}
event = {body.event|token}
resource-id = {body.data.id}
`,
  );
  return { dir, file };
}

const hmac = (secret, payload) => crypto.createHmac('sha256', secret).update(payload);

/** POSTs `body` (a string, sent byte for byte) to /v1/ingest/<source>. */
async function webhook(node, source, body, headers = {}, method = 'POST') {
  const res = await fetch(`${node.httpUrl}/v1/ingest/${source}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...headers },
    body: method === 'GET' ? undefined : body,
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

let deliveries = 0;

/** A GitHub delivery of `payload`: its body and headers, signed with `secret`. */
function github(payload, { event = 'pull_request', secret = GITHUB_SECRET, delivery } = {}) {
  const body = JSON.stringify(payload, null, 2); // pretty, as GitHub sends it
  const id = delivery ?? `${crypto.randomUUID()}-${++deliveries}`;
  return {
    body,
    id,
    headers: {
      'X-GitHub-Event': event,
      'X-GitHub-Delivery': id,
      'X-Hub-Signature-256': `sha256=${hmac(secret, body).digest('hex')}`,
    },
  };
}

/** A billing delivery signed over `<ts>.<body>`. */
function billing(payload, { ts = nowSec(), secret = BILLING_SECRET } = {}) {
  const body = JSON.stringify(payload);
  return {
    body,
    headers: {
      'X-Billing-Timestamp': String(ts),
      'X-Billing-Signature': hmac(secret, `${ts}.${body}`).digest('base64'),
    },
  };
}

const pr = (id, extra = {}) => ({ action: 'opened', number: 7, repository: { id, full_name: 'octo/hello' }, ...extra });

function assertRefused(r, status, code, what) {
  assert.equal(r.status, status, `${what}: expected ${status}, got ${r.status} ${r.text}`);
  assert.equal(r.json?.code, code, `${what}: body ${r.text}`);
  assert.equal(typeof r.json?.message, 'string', `${what}: body ${r.text}`);
}

async function accepted(node, source, hook) {
  const r = await webhook(node, source, hook.body, hook.headers);
  assert.equal(r.status, 202, `a correctly signed ${source} webhook: ${r.status} ${r.text}`);
  assert.equal(typeof r.json?.id, 'string', r.text);
  assert.equal(typeof r.json?.topic, 'string', r.text);
  return r.json;
}

describe('webhook sources (in-process bus)', () => {
  let node, config, sub;
  before(async () => {
    config = writeConfig();
    node = await startNode(['--config', config.file]);
    sub = await node.connect({ token: node.token({ sub: 'u_hooks', org: 'org_123' }) });
    await sub.subscribe('events.org_123.github.>');
    await sub.subscribe('events.org_123.billing.>');
  });
  after(async () => {
    await node?.stop();
    if (config) fs.rmSync(config.dir, { recursive: true, force: true });
  });

  it('a correctly signed GitHub webhook reaches the subscriber with its topic, id and data', T, async () => {
    const payload = pr(1296269, { pull_request: { title: 'héllo ✓', labels: [] } });
    const hook = github(payload);
    const res = await accepted(node, 'github', hook);
    const topic = 'events.org_123.github.repository.pull_request.1296269';
    assert.deepEqual(res, { id: hook.id, topic }, 'the delivery id is the event id');
    const ev = await sub.waitEvent((e) => e.id === hook.id, { what: 'the webhook event' });
    assert.equal(ev.subscription, 'events.org_123.github.>');
    assert.equal(ev.topic, topic);
    assert.deepEqual(ev.data, payload, 'data is the body');
    assert.equal(typeof ev.ts, 'number');
  });

  it('a badly signed webhook is 401 and delivers nothing; the good one after it arrives alone', T, async () => {
    const before = sub.events().length;
    const forged = github(pr(11), { secret: 'not the secret' });
    assertRefused(await webhook(node, 'github', forged.body, forged.headers), 401, 'unauthorized', 'wrong secret');
    // The right signature of another body.
    const good = github(pr(12));
    const tampered = good.body.replace('"opened"', '"closed"');
    assertRefused(await webhook(node, 'github', tampered, good.headers), 401, 'unauthorized', 'tampered body');
    const { 'X-Hub-Signature-256': _, ...unsigned } = good.headers;
    const missing = await webhook(node, 'github', good.body, unsigned);
    assertRefused(missing, 401, 'unauthorized', 'no signature');
    assert.equal(missing.json.message, 'missing signature header X-Hub-Signature-256');
    const short = await webhook(node, 'github', good.body, { ...good.headers, 'X-Hub-Signature-256': 'sha256=abc' });
    assertRefused(short, 401, 'unauthorized', 'short signature');
    // Upper-case hex is the same signature.
    const upper = { ...good.headers, 'X-Hub-Signature-256': good.headers['X-Hub-Signature-256'].toUpperCase() };
    await accepted(node, 'github', { body: good.body, headers: upper });
    await sub.waitEvent((e) => e.id === good.id, { what: 'the good webhook after the refused ones' });
    assert.deepEqual(
      sub.events().slice(before).map((e) => e.id),
      [good.id],
      `only the good webhook is delivered: ${sub._dump()}`,
    );
  });

  it('a redelivered webhook keeps its id', T, async () => {
    const hook = github(pr(21), { event: 'push', delivery: 'delivery-redelivered' });
    const first = await accepted(node, 'github', hook);
    const again = await accepted(node, 'github', hook);
    assert.equal(first.id, 'delivery-redelivered');
    assert.equal(again.id, first.id);
    await sub.waitState((c) => c.events((e) => e.id === first.id).length === 2, { what: 'both deliveries' });
  });

  it('a timestamped source accepts a fresh signature and refuses a stale or future one', T, async () => {
    const payload = { type: 'invoice', event: 'payment.succeeded', data: { id: 'in_42', amount: 1200 } };
    const fresh = billing(payload);
    const res = await accepted(node, 'billing', fresh);
    assert.equal(res.topic, 'events.org_123.billing.invoice.payment_succeeded.in_42', 'the token filter maps the dot');
    const ev = await sub.waitEvent((e) => e.id === res.id, { what: 'the billing event' });
    assert.deepEqual(ev.data, payload);

    const before = sub.events().length;
    const old = billing(payload, { ts: nowSec() - 600 });
    const stale = await webhook(node, 'billing', old.body, old.headers);
    assertRefused(stale, 401, 'unauthorized', 'stale timestamp');
    assert.match(stale.json.message, /X-Billing-Timestamp is more than 2m away/);
    const future = billing(payload, { ts: nowSec() + 600 });
    assertRefused(await webhook(node, 'billing', future.body, future.headers), 401, 'unauthorized', 'future timestamp');
    // A fresh timestamp on an old signature: the timestamp is signed.
    const restamped = { ...old.headers, 'X-Billing-Timestamp': String(nowSec()) };
    assertRefused(await webhook(node, 'billing', old.body, restamped), 401, 'unauthorized', 'restamped');
    const { 'X-Billing-Timestamp': _, ...noStamp } = fresh.headers;
    const missing = await webhook(node, 'billing', fresh.body, noStamp);
    assertRefused(missing, 401, 'unauthorized', 'no timestamp');
    assert.equal(missing.json.message, 'missing timestamp header X-Billing-Timestamp');

    const barrier = await accepted(node, 'billing', billing({ type: 'invoice', event: 'barrier', data: { id: 'b' } }));
    await sub.waitEvent((e) => e.id === barrier.id, { what: 'the barrier event' });
    assert.deepEqual(
      sub.events().slice(before).map((e) => e.id),
      [barrier.id],
      `refused webhooks deliver nothing: ${sub._dump()}`,
    );
  });

  it('an unmappable body is 422 naming the field', T, async () => {
    const noId = github({ action: 'opened', repository: { name: 'hello' } });
    const r = await webhook(node, 'github', noId.body, noId.headers);
    assertRefused(r, 422, 'unprocessable', 'missing field');
    assert.equal(r.json.message, 'resource-id: the body has no body.repository.id');
    const slashed = github(pr('octo/hello'));
    const s = await webhook(node, 'github', slashed.body, slashed.headers);
    assertRefused(s, 422, 'unprocessable', 'not a token');
    assert.match(s.json.message, /^resource-id: 'octo\/hello' is not a topic token/);
    // Correctly signed bytes that are not JSON.
    const notJson = 'hello';
    const headers = { ...noId.headers, 'X-Hub-Signature-256': `sha256=${hmac(GITHUB_SECRET, notJson).digest('hex')}` };
    const n = await webhook(node, 'github', notJson, headers);
    assertRefused(n, 422, 'unprocessable', 'not JSON');
    assert.equal(n.json.message, 'body is not JSON');
    // Signature first: an unsigned unmappable body is 401, not 422.
    assertRefused(await webhook(node, 'github', notJson, {}), 401, 'unauthorized', 'unsigned and unmappable');
  });

  it('an unknown source is 404, another method 405', T, async () => {
    const hook = github(pr(31));
    const r = await webhook(node, 'gitlab', hook.body, hook.headers);
    assertRefused(r, 404, 'not_found', 'unknown source');
    assert.equal(r.json.message, "no webhook source 'gitlab' on this node");
    assertRefused(await webhook(node, '', hook.body, hook.headers), 404, 'not_found', 'no source');
    assertRefused(await webhook(node, 'github/x', hook.body, hook.headers), 404, 'not_found', 'a path below a source');
    assertRefused(await webhook(node, 'github', undefined, {}, 'GET'), 405, 'bad_request', 'GET');
  });

  it('a body over --max-ingest-body is 413; up to it, larger than --max-frame-size, it is accepted', T, async () => {
    // max-frame-size = 4096, max-ingest-body = 16384 in the config file.
    const big = github(pr(41, { padding: 'x'.repeat(10000) }));
    assert.ok(big.body.length > 4096 && big.body.length < 16384);
    const res = await accepted(node, 'github', big);
    await sub.waitEvent((e) => e.id === res.id, { what: 'the 10 KB webhook' });
    const huge = github(pr(42, { padding: 'x'.repeat(20000) }));
    const r = await webhook(node, 'github', huge.body, huge.headers);
    assertRefused(r, 413, 'bad_request', 'over max-ingest-body');
    assert.equal(r.json.message, 'body larger than max-ingest-body (16384 bytes)');
    // Other endpoints keep max-frame-size.
    const token = node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.x.>'] });
    const p = await node.publish(token, { topic: 'events.org_123.x.big', data: 'x'.repeat(10000) });
    assert.equal(p.status, 413, `a 10 KB publish over max-frame-size: ${p.status} ${p.text}`);
    // So does an unknown source.
    assert.equal((await webhook(node, 'gitlab', big.body, big.headers)).status, 413);
  });

  it('/metrics counts each source by result', T, async () => {
    const m = await node.metrics();
    const count = (source, result) => m.get('switchyard_ingest_requests_total', { source, result });
    assert.ok(count('github', 'accepted') >= 5, m.text);
    assert.ok(count('github', 'bad_signature') >= 3, m.text);
    assert.ok(count('github', 'missing_signature') >= 2, m.text);
    assert.ok(count('github', 'unmappable') >= 2, m.text);
    assert.ok(count('github', 'malformed_body') >= 1, m.text);
    assert.ok(count('github', 'too_large') >= 1, m.text);
    assert.ok(count('github', 'method_not_allowed') >= 1, m.text);
    assert.ok(count('billing', 'accepted') >= 2, m.text);
    assert.ok(count('billing', 'stale_timestamp') >= 2, m.text);
    assert.ok(count('billing', 'bad_timestamp') >= 1, m.text);
    assert.equal(count('billing', 'unavailable'), 0);
    assert.ok(m.get('switchyard_ingest_unknown_source_total') >= 2, m.text);
    // Every source has every result, nothing else.
    const sources = new Set(m.samples.filter((s) => s.name === 'switchyard_ingest_requests_total').map((s) => s.labels.source));
    assert.deepEqual([...sources].sort(), ['billing', 'github']);
  });

  it('the node log names the source and the reason, never the secret', T, async () => {
    await waitUntil(() => /ingest source github: refused a webhook/.test(node.stderr), { message: 'a refusal log line' });
    assert.doesNotMatch(node.stderr, new RegExp(GITHUB_SECRET));
    assert.doesNotMatch(node.stderr, new RegExp(BILLING_SECRET));
  });
});

describe('webhook source configuration', () => {
  it('a bad [ingest.*] section stops the node with status 2 naming the source and key', T, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-ingest-bad-'));
    try {
      const file = path.join(dir, 'node.ini');
      fs.writeFileSync(file, '[ingest.github]\norg = org_123\nsecret = s\nsignature-header = X-Sig\nresource = repo\nevent = {header.X-Event}\n');
      const err = await startNode(['--config', file], { startTimeout: 5000 }).then(
        (n) => {
          n.stop();
          return null;
        },
        (e) => e,
      );
      assert.ok(err, 'the node must not start');
      assert.match(err.message, /exited \(code 2/);
      assert.match(err.message, /\[ingest\.github\] resource-id: required/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('webhook sources over NATS', () => {
  it('a webhook to one node reaches a subscriber of another, as an envelope with its source and headers', T, async (t) => {
    const config = writeConfig();
    t.after(() => fs.rmSync(config.dir, { recursive: true, force: true }));
    const ns = await startNats(t);
    const a = await startBridgedNode(t, ns, ['--config', config.file]);
    const b = await startBridgedNode(t, ns, ['--config', config.file]);
    await waitBus(a, 'up');
    await waitBus(b, 'up');
    const nc = await natsClient(t, ns, 'observer');
    const seen = [];
    nc.subscribe('events.org_123.github.>', { callback: (err, msg) => !err && seen.push({ subject: msg.subject, env: mpDecode(msg.data) }) });
    await nc.flush();
    const sub = await b.connect({ t, token: b.token({ sub: 'u_b', org: 'org_123' }) });
    await sub.subscribe('events.org_123.github.*.issues.>');
    // The subscription reaches NATS before the webhook does.
    await waitUntil(async () => (await metric(b, 'switchyard_bus_interest')) >= 1, { message: 'the interest of node B' });

    const payload = pr(555, { issue: { number: 3 } });
    const hook = github(payload, { event: 'issues' });
    const res = await accepted(a, 'github', hook);
    const topic = 'events.org_123.github.repository.issues.555';
    assert.equal(res.topic, topic);
    const ev = await sub.waitEvent((e) => e.id === hook.id, { what: 'the webhook on the other node' });
    assert.equal(ev.topic, topic);
    assert.deepEqual(ev.data, payload);

    await waitUntil(() => seen.length >= 1, { message: 'the envelope on NATS' });
    assert.equal(seen[0].subject, topic);
    const env = seen[0].env;
    assert.equal(env.id, hook.id);
    assert.equal(env.source, 'ingest:github');
    assert.deepEqual(env.data, payload);
    assert.deepEqual(env.headers, { 'ingest-x-github-delivery': hook.id, 'ingest-x-github-event': 'issues' });
  });

  it('with NATS down a correctly signed webhook is 503', T, async (t) => {
    const config = writeConfig();
    t.after(() => fs.rmSync(config.dir, { recursive: true, force: true }));
    const ns = await startNats(t);
    const node = await startBridgedNode(t, ns, ['--config', config.file]);
    await waitBus(node, 'up');
    await ns.kill('SIGKILL');
    await waitBus(node, 'down');
    const hook = github(pr(66));
    const r = await webhook(node, 'github', hook.body, hook.headers);
    assertRefused(r, 503, 'unavailable', 'bus down');
    assert.equal(r.json.message, 'event bus unavailable; retry later');
    assert.equal(await metric(node, 'switchyard_ingest_requests_total', { source: 'github', result: 'unavailable' }), 1);
  });
});
