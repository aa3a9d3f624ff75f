// A room in a real browser: Debian's Chromium (driven by playwright-core)
// loads tests/e2e/browser/room.html from another origin than the node's, so
// the page goes through CORS and authenticates its WebSocket with
// `?token=`. It posts through the page's form, watches an echo agent's reply
// grow token by token, and reloads mid-reply: the reloaded page must show the
// text so far (the catch-up) and end with exactly the whole reply.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startNode } from './lib/node.mjs';

const CHROMIUM = '/usr/bin/chromium';
const ORG = 'org_123';
const here = path.dirname(new URL(import.meta.url).pathname);
const ARTIFACTS = path.join(here, 'artifacts');
// The CI machine has Chromium (deploy/install-deps.sh); a developer's may not.
const skip = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (apt-get install chromium)`;
const T = { timeout: 60000, skip };

/** Serves the page's two files, nothing else. */
function servePage() {
  const files = { '/room.html': 'text/html; charset=utf-8', '/room.js': 'text/javascript; charset=utf-8' };
  const server = http.createServer((req, res) => {
    const name = new URL(req.url, 'http://x').pathname;
    if (!files[name]) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': files[name], 'Cache-Control': 'no-store' });
    res.end(fs.readFileSync(path.join(here, 'browser', name)));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const words = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`).join(' ');

/** What the page shows of message `mid` (null before it shows it). */
const shown = (page, mid) =>
  page.evaluate((id) => {
    const li = document.querySelector(`li[data-message-id="${id}"]`);
    if (!li) return null;
    return { text: li.querySelector('.text').textContent, state: li.dataset.state, caughtUp: li.dataset.caughtUp ?? null };
  }, mid);

/** Waits until reply `mid` shows more than `length` characters or is no longer streaming. */
const grown = (page, mid, length) =>
  page.waitForFunction(
    ([id, n]) => {
      const li = document.querySelector(`li[data-message-id="${id}"]`);
      return li && (li.dataset.state !== 'streaming' || li.querySelector('.text').textContent.length > n);
    },
    [mid, length],
    { timeout: 15000, polling: 10 },
  );

/** Waits for a reply that is streaming now and returns its message id. */
async function streamingReply(page) {
  const li = await page.waitForSelector('li.reply[data-state="streaming"]', { timeout: 15000 });
  return li.getAttribute('data-message-id');
}

async function postThroughForm(page, text) {
  await page.fill('#text', text);
  await page.click('#send');
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('posted #'), null, {
    timeout: 10000,
  });
}

function assertPng(file) {
  const bytes = fs.readFileSync(file);
  assert.ok(bytes.length > 1000, `${file}: ${bytes.length} bytes`);
  assert.deepEqual([...bytes.subarray(1, 4)], [...Buffer.from('PNG')], `${file} is a PNG`);
}

describe('a room in the browser (Chromium)', () => {
  let node, pageServer, browser, page, pageUrl, room;
  const pageErrors = [];
  before(async () => {
    if (skip) return;
    pageServer = await servePage();
    const origin = `http://127.0.0.1:${pageServer.address().port}`;
    node = await startNode(['--allowed-origins', origin]);
    const alice = node.token({ sub: 'alice', org: ORG });
    const r = await node.http('POST', '/v1/rooms', { token: alice, body: { name: 'browser', private: true } });
    assert.equal(r.status, 201, r.text);
    room = r.json.id;
    const a = await node.http('POST', `/v1/rooms/${room}/participants`, {
      token: alice,
      body: { id: 'agent_echo', kind: 'agent', behavior: 'echo', auto_respond: 'always', config: { delay_ms: 80 } },
    });
    assert.equal(a.status, 201, a.text);
    pageUrl = `${origin}/room.html?${new URLSearchParams({ node: node.httpUrl, token: alice, room })}`;
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    // Headless without the sandbox: CI runs as root, where Chromium's sandbox cannot start.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 900, height: 700 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
  });
  after(async () => {
    await browser?.close();
    await node?.stop();
    pageServer?.close();
  });

  it('streams a reply into the page as it is written', T, async () => {
    await page.goto(pageUrl);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
    const text = words(36, 'word');
    await postThroughForm(page, text);
    await page.waitForSelector('li.message', { timeout: 10000 });
    assert.equal(await page.textContent('li.message .text'), text, 'the posted message is shown');
    const mid = await streamingReply(page);
    // Samples of the reply as it grows, each taken once it showed more.
    const samples = [];
    let length = 0;
    for (;;) {
      await grown(page, mid, length);
      const s = await shown(page, mid);
      if (s.state !== 'streaming') break;
      samples.push(s.text);
      length = s.text.length;
      if (samples.length === 3) await page.screenshot({ path: path.join(ARTIFACTS, 'streaming.png') });
    }
    const end = await shown(page, mid);
    assert.equal(end.state, 'complete', JSON.stringify(end));
    assert.equal(end.text, text, 'the reply is the message, whole');
    assert.ok(samples.length >= 5, `the reply grew in steps: ${JSON.stringify(samples)}`);
    for (let i = 0; i < samples.length; i++) {
      assert.ok(text.startsWith(samples[i]), `sample ${i} is a prefix of the reply: ${JSON.stringify(samples[i])}`);
      if (i > 0) assert.ok(samples[i].length > samples[i - 1].length, `sample ${i} is longer than the one before`);
    }
    assert.ok(samples[0].length < text.length / 2, `the first sample came early: ${JSON.stringify(samples[0])}`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'complete.png') });
    assertPng(path.join(ARTIFACTS, 'streaming.png'));
    assertPng(path.join(ARTIFACTS, 'complete.png'));
    assert.deepEqual(pageErrors, []);
  });

  it('a page reloaded mid-reply shows the text so far, then the rest exactly once', T, async () => {
    await page.goto(pageUrl);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
    const text = words(80, 'again');
    await postThroughForm(page, text);
    const mid = await streamingReply(page);
    await page.waitForFunction(
      (id) => document.querySelector(`li[data-message-id="${id}"] .text`).textContent.split(' ').length >= 8,
      mid,
      { timeout: 15000, polling: 10 },
    );
    const before = (await shown(page, mid)).text;
    await page.reload();
    await page.waitForSelector(`li[data-message-id="${mid}"]`, { timeout: 10000 });
    const first = await shown(page, mid);
    assert.notEqual(first.caughtUp, null, `the reloaded page started from a catch-up: ${JSON.stringify(first)}`);
    assert.ok(first.text.startsWith(before), `the reloaded page shows at least what it showed: ${JSON.stringify(first)}`);
    assert.ok(text.startsWith(first.text), `and only the reply's words: ${JSON.stringify(first.text)}`);
    assert.equal(first.state, 'streaming', 'reloaded before the reply ended');
    await page.waitForSelector(`li[data-message-id="${mid}"][data-state="complete"]`, { timeout: 20000 });
    const end = await shown(page, mid);
    assert.equal(end.text, text, 'no word missing or repeated after the reload');
    await page.screenshot({ path: path.join(ARTIFACTS, 'reloaded.png') });
    assertPng(path.join(ARTIFACTS, 'reloaded.png'));
    assert.deepEqual(pageErrors, []);
  });
});
