// Notifications end to end: the real binary on nats-server with JetStream,
// real WebSocket clients, a local push gateway and Debian's aiosmtpd with
// STARTTLS and AUTH. Rules are written through the API; what users get on
// each channel is checked where they would see it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startJetStream, FAST_RECONNECT } from './lib/nats.mjs';
import { api, startNode, waitUntil } from './lib/node.mjs';
import { startPushServer } from './lib/push_server.mjs';
import { haveAiosmtpd, startSmtpServer } from './lib/smtp.mjs';

const T = { timeout: 90000 };
const HOOK_SECRET = 'hook-secret-for-the-notification-test';
const ORG = 'org_123';
const skip = haveAiosmtpd() ? false : 'python3-aiosmtpd is not installed';

/** nats-server, push gateway, mail server and a node wired to all three. */
async function setup(t, { ackTimeout = '1s', extra = [] } = {}) {
  const nats = await startJetStream(t);
  const push = await startPushServer();
  t.after(() => push.close());
  const smtp = await startSmtpServer(t);
  const flags = [
    '--nats', nats.url, ...FAST_RECONNECT,
    '--push-url', push.url, '--push-header', 'Authorization: Bearer push-key',
    '--smtp-host', '127.0.0.1', '--smtp-port', String(smtp.port), '--smtp-tls', 'required',
    '--smtp-ca-file', smtp.cert, '--smtp-user', smtp.user, '--smtp-password', smtp.password,
    '--smtp-from', 'noreply@switchyard.test',
    '--notify-ack-timeout', ackTimeout, '--notify-retry-max-delay', '1s', '--notify-digest-window', '2s',
    ...extra,
  ];
  const start = async () => {
    const node = await startNode(flags, { secret: env.secret });
    t.after(() => node.stop());
    return node;
  };
  const env = { nats, push, smtp, flags, secret: 'notify-e2e-secret-0123456789abcdef', start };
  env.node = await start();
  env.admin = env.node.token({ sub: 'root', org: ORG, admin: true, pub: [`events.${ORG}.>`] });
  return env;
}

/** Stores a rule, retrying while the node is still loading its rules. */
async function addRule(env, rule) {
  const r = await waitUntil(async () => {
    const res = await api(env.node, 'POST', '/v1/notification-rules', env.admin, rule);
    return res.status === 503 ? false : res;
  }, { message: 'the notification rules to load' });
  assert.equal(r.status, 201, `POST rule: ${r.status} ${r.text}`);
  return r.json;
}

async function setContact(env, user, contact) {
  const token = env.node.token({ sub: user, org: ORG });
  await api(env.node, 'PUT', `/v1/users/${user}/contact`, token, contact, 200);
}

async function inbox(env, user, query = '') {
  const token = env.node.token({ sub: user, org: ORG });
  const r = await api(env.node, 'GET', `/v1/notifications${query}`, token, undefined, 200);
  return r.json.notifications;
}

/** Waits until `user`'s inbox holds a notification that `pred` accepts. */
async function inboxUntil(env, user, pred, what) {
  return waitUntil(async () => (await inbox(env, user)).find(pred), { timeout: 20000, message: what });
}

const settled = (x) => ['websocket', 'push', 'email'].every((c) => ['sent', 'skipped', 'failed'].includes(x[c].state));

const alertRule = (extra = {}) => ({
  id: 'alerts',
  topic: `events.${ORG}.alerts.alert.fired.*`,
  recipients: { fields: ['data.on_call'] },
  title: 'Alert {{data.name}}',
  body: '<{{data.name}}> fired on {{data.host}}',
  priority: 'urgent',
  ...extra,
});

describe('notifications', { skip }, () => {
  it('a connected user gets the frame and neither push nor email', T, async (t) => {
    const env = await setup(t);
    await addRule(env, alertRule({ priority: 'normal' }));
    await setContact(env, 'bob', { email: 'bob@example.com', devices: [{ platform: 'fcm', token: 'dev-bob' }] });
    const bob = await env.node.connect({ t, token: env.node.token({ sub: 'bob', org: ORG }) });
    await env.node.publishOk(env.admin, `events.${ORG}.alerts.alert.fired.a1`, { name: 'disk', host: 'db1', on_call: 'bob' });
    const frame = await bob.waitFor((f) => f.type === 'notification', { what: 'the notification frame' });
    assert.equal(frame.title, 'Alert disk');
    assert.equal(frame.body, '<disk> fired on db1');
    assert.equal(frame.priority, 'normal');
    assert.deepEqual(frame.data, { name: 'disk', host: 'db1', on_call: 'bob' });
    assert.equal(typeof frame.id, 'string');
    const x = await inboxUntil(env, 'bob', (n) => n.id === frame.id && settled(n), 'the notification to settle');
    assert.equal(x.websocket.state, 'sent');
    assert.equal(x.push.state, 'skipped');
    assert.equal(x.email.state, 'skipped');
    assert.equal(env.push.requests.length, 0);
    assert.equal(env.smtp.messages().length, 0);
  });

  it('an offline user gets push and then email with the rendered content', T, async (t) => {
    const env = await setup(t);
    await addRule(env, alertRule());
    await setContact(env, 'alice', { email: 'alice@example.com', devices: [{ platform: 'apns', token: 'dev-alice' }] });
    await env.node.publishOk(env.admin, `events.${ORG}.alerts.alert.fired.a1`, { name: 'disk', host: 'db1', on_call: 'alice' });
    const pushed = await waitUntil(() => env.push.delivered[0], { message: 'the push' });
    assert.equal(pushed.title, 'Alert disk');
    assert.equal(pushed.body, '<disk> fired on db1');
    assert.equal(pushed.priority, 'urgent');
    assert.equal(pushed.user, 'alice');
    assert.deepEqual(pushed.devices, [{ platform: 'apns', token: 'dev-alice' }]);
    const req = env.push.requests[0];
    assert.equal(req.headers.authorization, 'Bearer push-key');
    assert.equal(req.headers['idempotency-key'], pushed.id);
    const mail = await waitUntil(() => env.smtp.messages()[0], { timeout: 20000, message: 'the email' });
    assert.deepEqual(mail.rcpt_tos, ['alice@example.com']);
    assert.equal(mail.tls, true, 'the mail went over STARTTLS');
    assert.equal(mail.auth_user, env.smtp.user);
    assert.equal(mail.subject, 'Alert disk');
    assert.match(mail.text, /<disk> fired on db1/);
    assert.match(mail.html, /&lt;disk&gt; fired on db1/);
    assert.equal(mail.headers['message-id'], `<${pushed.id}@switchyard>`);
    const x = await inboxUntil(env, 'alice', (n) => n.id === pushed.id && settled(n), 'the notification to settle');
    assert.deepEqual([x.websocket.state, x.push.state, x.email.state], ['skipped', 'sent', 'sent']);
  });

  it('an urgent frame not acknowledged falls back to push; an acknowledged one does not', T, async (t) => {
    const env = await setup(t);
    await addRule(env, alertRule());
    await setContact(env, 'carol', { devices: [{ platform: 'fcm', token: 'dev-carol' }] });
    const carol = await env.node.connect({ t, token: env.node.token({ sub: 'carol', org: ORG }) });
    await env.node.publishOk(env.admin, `events.${ORG}.alerts.alert.fired.a1`, { name: 'acked', on_call: 'carol' });
    const first = await carol.waitFor((f) => f.type === 'notification', { what: 'the first frame' });
    carol.send({ type: 'ack', id: first.id });
    await env.node.publishOk(env.admin, `events.${ORG}.alerts.alert.fired.a2`, { name: 'ignored', on_call: 'carol' });
    const second = await carol.waitFor((f) => f.type === 'notification', { what: 'the second frame' });
    const pushed = await waitUntil(() => env.push.delivered.find((b) => b.id === second.id), { message: 'the push of the unacked one' });
    assert.equal(pushed.title, 'Alert ignored');
    const x = await inboxUntil(env, 'carol', (n) => n.id === first.id && settled(n), 'the acked one to settle');
    assert.equal(x.acked, true);
    assert.equal(x.push.state, 'skipped');
    assert.equal(env.push.attempts(first.id).length, 0);
  });

  it('a push gateway that is down for a while gets the notification once it is back', T, async (t) => {
    const env = await setup(t);
    await addRule(env, alertRule({ channels: ['push'] }));
    await setContact(env, 'dave', { devices: [{ platform: 'fcm', token: 'dev-dave' }] });
    env.push.mode = 'down';
    await env.node.publishOk(env.admin, `events.${ORG}.alerts.alert.fired.a1`, { name: 'flaky', on_call: 'dave' });
    await waitUntil(() => env.push.requests.length >= 2, { timeout: 20000, message: 'two refused attempts' });
    env.push.mode = 'ok';
    const delivered = await waitUntil(() => env.push.delivered[0], { timeout: 20000, message: 'the push after recovery' });
    const x = await inboxUntil(env, 'dave', (n) => n.id === delivered.id && settled(n), 'the notification to settle');
    assert.equal(x.push.state, 'sent');
    assert.ok(x.push.attempts >= 3, `attempts: ${x.push.attempts}`);
    assert.equal(env.push.delivered.filter((b) => b.id === delivered.id).length, 1, 'delivered once');
  });

  it('a node killed mid-flight resumes: nothing lost, nothing twice', T, async (t) => {
    const env = await setup(t, { ackTimeout: '3s' });
    await addRule(env, alertRule());
    await setContact(env, 'erin', { email: 'erin@example.com', devices: [{ platform: 'fcm', token: 'dev-erin' }] });
    await env.node.publishOk(env.admin, `events.${ORG}.alerts.alert.fired.a1`, { name: 'restart', on_call: 'erin' });
    const pushed = await waitUntil(() => env.push.delivered[0], { message: 'the push' });
    // The email waits 3 s for an ack: kill the node in that window, once
    // the push is on record as sent (killed between the gateway's answer
    // and that record, the node would push again with the same
    // Idempotency-Key, as docs/notifications.md says).
    await inboxUntil(env, 'erin', (n) => n.id === pushed.id && n.push.state === 'sent', 'the push on record');
    env.node.proc.kill('SIGKILL');
    await env.node.exited;
    assert.equal(env.smtp.messages().length, 0, 'no email before the kill');
    env.node = await env.start();
    const mail = await waitUntil(() => env.smtp.messages()[0], { timeout: 30000, message: 'the email after the restart' });
    assert.equal(mail.headers['message-id'], `<${pushed.id}@switchyard>`);
    const x = await inboxUntil(env, 'erin', (n) => n.id === pushed.id && settled(n), 'the notification to settle');
    assert.deepEqual([x.push.state, x.email.state], ['sent', 'sent']);
    assert.equal(env.push.attempts(pushed.id).length, 1, 'pushed once');
    assert.equal(env.smtp.messages().length, 1, 'mailed once');
  });

  it('low priority for an offline user becomes one digest email', T, async (t) => {
    const env = await setup(t);
    await addRule(env, alertRule({ priority: 'low', title: 'Item {{data.name}}' }));
    await setContact(env, 'fay', { email: 'fay@example.com' });
    for (const name of ['one', 'two', 'three'])
      await env.node.publishOk(env.admin, `events.${ORG}.alerts.alert.fired.${name}`, { name, on_call: 'fay' });
    const mail = await waitUntil(() => env.smtp.messages()[0], { timeout: 20000, message: 'the digest' });
    assert.match(mail.subject, /^3 notifications/);
    for (const name of ['one', 'two', 'three']) assert.match(mail.text, new RegExp(`Item ${name}`));
    await waitUntil(async () => (await inbox(env, 'fay')).every((n) => n.email.state === 'sent'), { message: 'every email sent' });
    assert.equal(env.smtp.messages().length, 1);
  });

  it('the rules API validates, scopes to admins and round-trips', T, async (t) => {
    const env = await setup(t);
    const rule = await addRule(env, alertRule());
    assert.equal(rule.id, 'alerts');
    const bad = await api(env.node, 'POST', '/v1/notification-rules', env.admin, { ...alertRule({ id: 'x' }), when: [{ field: 'data.a', op: 'nope', value: 1 }] }, 400);
    assert.match(bad.json.message, /when\[0\]\.op/);
    const user = env.node.token({ sub: 'bob', org: ORG });
    await api(env.node, 'GET', '/v1/notification-rules', user, undefined, 403);
    await api(env.node, 'POST', '/v1/notification-rules', env.admin, alertRule(), 409);
    const list = await api(env.node, 'GET', '/v1/notification-rules', env.admin, undefined, 200);
    assert.deepEqual(list.json.rules.map((r) => r.id), ['alerts']);
    const changed = await api(env.node, 'PUT', '/v1/notification-rules/alerts', env.admin, { ...alertRule(), priority: 'low' }, 200);
    assert.equal(changed.json.priority, 'low');
    const other = env.node.token({ sub: 'root', org: 'org_999', admin: true });
    await api(env.node, 'GET', '/v1/notification-rules/alerts', other, undefined, 404);
    await api(env.node, 'DELETE', '/v1/notification-rules/alerts', env.admin, undefined, 200);
    await api(env.node, 'GET', '/v1/notification-rules/alerts', env.admin, undefined, 404);
    // Contact points: the user themself or an admin.
    await api(env.node, 'PUT', '/v1/users/alice/contact', user, { email: 'a@example.com' }, 403);
    await api(env.node, 'PUT', '/v1/users/alice/contact', env.admin, { email: 'not an address' }, 400);
    await api(env.node, 'PUT', '/v1/users/alice/contact', env.admin, { quiet_hours: { start: '22:00', end: '07:00', tz: 'Mars/Olympus' } }, 400);
  });

  it('a signed webhook reaches a subscriber and a rule; a badly signed one neither', T, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-hook-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const config = path.join(dir, 'node.ini');
    fs.writeFileSync(config, [
      '[ingest.github]', `org = ${ORG}`, `secret = ${HOOK_SECRET}`,
      'signature-header = X-Hub-Signature-256', 'signature-prefix = sha256=',
      'event = {header.X-GitHub-Event}', 'resource = repository',
      'resource-id = {body.repository.id}', 'id = {header.X-GitHub-Delivery}', '',
    ].join('\n'));
    const env = await setup(t, { extra: ['--config', config] });
    const topic = `events.${ORG}.github.repository.*.*`;
    await addRule(env, {
      id: 'reviews', topic, recipients: { fields: ['data.requested_reviewer.login'] },
      title: 'Review {{data.pull_request.title}}', body: '{{data.sender.login}} asks for your review',
      priority: 'normal', channels: ['push'],
    });
    await setContact(env, 'hana', { devices: [{ platform: 'webpush', token: 'dev-hana' }] });
    const watcher = await env.node.connect({ t, token: env.node.token({ sub: 'watcher', org: ORG }) });
    watcher.send({ type: 'subscribe', id: 's', topic });
    await watcher.waitFor((f) => f.type === 'ok' && f.id === 's', { what: 'the subscribe ok' });
    const send = (payload, delivery, secret = HOOK_SECRET) => {
      const body = JSON.stringify(payload);
      const sig = crypto.createHmac('sha256', secret).update(body).digest('hex');
      return fetch(`${env.node.httpUrl}/v1/ingest/github`, {
        method: 'POST', body,
        headers: { 'Content-Type': 'application/json', 'X-GitHub-Event': 'review', 'X-GitHub-Delivery': delivery, 'X-Hub-Signature-256': `sha256=${sig}` },
      });
    };
    const forged = { repository: { id: 7 }, pull_request: { title: 'forged' }, sender: { login: 'mallory' }, requested_reviewer: { login: 'hana' } };
    assert.equal((await send(forged, 'd-1', 'wrong secret')).status, 401);
    const real = { repository: { id: 7 }, pull_request: { title: 'Fix the build' }, sender: { login: 'ivan' }, requested_reviewer: { login: 'hana' } };
    assert.equal((await send(real, 'd-2')).status, 202);
    const ev = await watcher.waitFor((f) => f.type === 'event', { what: 'the webhook event' });
    assert.equal(ev.topic, `events.${ORG}.github.repository.review.7`);
    assert.equal(ev.id, 'd-2');
    assert.equal(ev.data.pull_request.title, 'Fix the build');
    const pushed = await waitUntil(() => env.push.delivered[0], { message: 'the push of the rule' });
    assert.equal(pushed.user, 'hana');
    assert.equal(pushed.title, 'Review Fix the build');
    assert.equal(pushed.body, 'ivan asks for your review');
    // The forged one reached neither: the only event is the real one, and
    // so is the only notification.
    assert.equal(watcher.history.filter((f) => f.type === 'event').length, 1);
    const box = await inboxUntil(env, 'hana', (n) => settled(n), 'the notification to settle');
    assert.equal(box.event_id, 'd-2');
    assert.equal((await inbox(env, 'hana')).length, 1);
  });

  it('rules survive a restart and reading marks a notification read', T, async (t) => {
    const env = await setup(t);
    await addRule(env, alertRule({ channels: ['websocket'] }));
    await env.node.stop();
    env.node = await env.start();
    const gus = await env.node.connect({ t, token: env.node.token({ sub: 'gus', org: ORG }) });
    const token = env.node.token({ sub: 'gus', org: ORG });
    // The rule actor is back once an event reaches the session.
    const frame = await waitUntil(async () => {
      await env.node.publishOk(env.admin, `events.${ORG}.alerts.alert.fired.a${Date.now()}`, { name: 'x', on_call: 'gus' });
      return gus.waitFor((f) => f.type === 'notification', { timeout: 1000 }).catch(() => false);
    }, { timeout: 20000, message: 'a notification after the restart' });
    assert.ok((await inbox(env, 'gus', '?unread=1')).some((n) => n.id === frame.id));
    await api(env.node, 'POST', `/v1/notifications/${frame.id}/read`, token, undefined, 200);
    assert.ok(!(await inbox(env, 'gus', '?unread=1')).some((n) => n.id === frame.id));
    await api(env.node, 'POST', '/v1/notifications/nope/read', token, undefined, 404);
  });
});
