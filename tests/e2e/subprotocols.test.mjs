// Subprotocols: negotiation with Sec-WebSocket-Protocol, the welcome's "subprotocol", batched
// delivery (ndjson, msgpack) of a burst with every event once and in order, and msgpack round
// trips of every frame type in both directions.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, openWs, waitUntil } from './lib/node.mjs';

const T = { timeout: 60000 };
const BATCH = 65536; // --batch-frame-size (the default)
const ORG = 'org_123';

describe('subprotocols', () => {
  let node, pubToken;

  before(async () => {
    // A deep outbound queue: the burst test holds a whole burst unread.
    node = await startNode(['--outbound-queue-limit', String(256 * 1024 * 1024), '--batch-frame-size', String(BATCH)]);
    pubToken = node.token({ sub: 'svc_pub', org: ORG, pub: [`events.${ORG}.>`] });
  });
  after(async () => {
    await node?.stop();
  });

  const connect = (t, protocols, opts = {}) => node.connect({ t, token: node.token({ org: ORG }), protocols, ...opts });

  it('a client that asks for none gets switchyard.v1.json, and no protocol header', T, async (t) => {
    const c = await connect(t, []);
    assert.equal(c.ws.protocol, '');
    assert.equal(c.welcome.subprotocol, 'switchyard.v1.json');
  });

  for (const name of ['json', 'ndjson', 'msgpack']) {
    it(`switchyard.v1.${name} is chosen, answered in the handshake and named in the welcome`, T, async (t) => {
      const c = await connect(t, [`switchyard.v1.${name}`]);
      assert.equal(c.ws.protocol, `switchyard.v1.${name}`);
      assert.equal(c.welcome.subprotocol, `switchyard.v1.${name}`);
      assert.equal(c.welcome.type, 'welcome');
      assert.equal(c.welcome.org, ORG);
    });
  }

  it("the first supported protocol in the client's order wins; unknown ones are skipped", T, async (t) => {
    const a = await connect(t, ['x.unknown', 'switchyard.v1.msgpack', 'switchyard.v1.json'], { format: 'msgpack' });
    assert.equal(a.ws.protocol, 'switchyard.v1.msgpack');
    assert.equal(a.welcome.subprotocol, 'switchyard.v1.msgpack');
    const b = await connect(t, ['switchyard.v1.json', 'switchyard.v1.ndjson'], { format: 'json' });
    assert.equal(b.ws.protocol, 'switchyard.v1.json');
  });

  it('only unknown subprotocols: HTTP 400 unsupported_subprotocol naming the supported ones', T, async () => {
    const err = await openWs(node.wsUrl, { protocols: ['mqtt', 'switchyard.v2.json'], headers: { Authorization: `Bearer ${node.token()}` } }).then(
      () => null,
      (e) => e,
    );
    assert.ok(err, 'the upgrade must be refused');
    assert.equal(err.status, 400, err.message);
    const body = JSON.parse(err.body);
    assert.equal(body.code, 'unsupported_subprotocol');
    for (const name of ['json', 'ndjson', 'msgpack']) assert.match(body.message, new RegExp(`switchyard\\.v1\\.${name}`));
  });

  /**
   * Holds `c` unread while `count` events of `size` data bytes are published (far more than the
   * kernel's socket buffers hold, so the node's queue fills), then reads: every event arrives once,
   * in order, packed several to a frame, no frame over the batch size unless it holds one message.
   */
  async function burst(t, format) {
    const topic = `events.${ORG}.burst.${format}.done`;
    const c = await connect(t, [`switchyard.v1.${format}`]);
    await c.subscribe(topic);
    c.ws._socket.pause();
    const count = 1500;
    const pad = 'x'.repeat(16 * 1024);
    const ids = [];
    for (let i = 0; i < count; i++) ids.push(await node.publishOk(pubToken, topic, { i, pad }));
    c.ws._socket.resume();
    await waitUntil(() => c.events().length >= count, { timeout: 30000, message: `${count} events (have ${c.events().length})` });
    const got = c.events();
    assert.equal(got.length, count, 'every event once');
    assert.deepEqual(
      got.map((e) => e.id),
      ids,
      'in publish order',
    );
    assert.deepEqual(
      got.map((e) => e.data.i),
      [...Array(count).keys()],
    );
    for (const e of got) {
      assert.equal(e.subscription, topic);
      assert.equal(e.topic, topic);
      assert.equal(e.data.pad.length, pad.length);
    }
    assert.ok(!c.history.some((f) => f.type.startsWith('__')), `undecodable frames: ${JSON.stringify(c.history.find((f) => f.type.startsWith('__')))?.slice(0, 300)}`);
    const packed = c.frameSizes.filter((n) => n > 1).length;
    assert.ok(packed > 0, `some frames must carry several events, got frame sizes ${c.frameSizes.slice(0, 40)}`);
    c.frameSizes.forEach((n, i) => {
      if (n > 1) assert.ok(c.frameBytes[i] <= BATCH, `frame ${i} holds ${n} messages in ${c.frameBytes[i]} bytes, over ${BATCH}`);
    });
    return c;
  }

  it('switchyard.v1.ndjson packs a burst into few text frames, each event once and in order', T, async (t) => {
    await burst(t, 'ndjson');
  });

  it('switchyard.v1.msgpack packs a burst into few binary frames, each event once and in order', T, async (t) => {
    await burst(t, 'msgpack');
  });

  it('ndjson frames are objects separated by single newlines, with none at the end', T, async (t) => {
    const topic = `events.${ORG}.lines.check.done`;
    const c = await connect(t, ['switchyard.v1.ndjson']);
    await c.subscribe(topic);
    const raw = [];
    c.ws.on('message', (data) => raw.push(data.toString('utf8')));
    c.ws._socket.pause();
    const pad = 'y'.repeat(16 * 1024);
    for (let i = 0; i < 600; i++) await node.publishOk(pubToken, topic, { i, pad, text: 'a\nb' });
    c.ws._socket.resume();
    await waitUntil(() => c.events().length >= 600, { timeout: 30000, message: 'the ndjson events' });
    for (const text of raw) {
      assert.ok(!text.endsWith('\n') && !text.startsWith('\n') && !text.includes('\n\n'), 'single separators only');
      for (const line of text.split('\n')) assert.equal(typeof JSON.parse(line), 'object');
    }
    assert.equal(c.events()[0].data.text, 'a\nb', 'a newline inside a string is escaped');
  });

  it('msgpack: every frame type round-trips as msgpack maps (auth, welcome, subscribe, ok, event, error, unsubscribe)', T, async (t) => {
    const c = await node.connect({ t, token: node.token({ org: ORG, pub: [`events.${ORG}.mp.>`] }), via: 'frame', protocols: ['switchyard.v1.msgpack'] });
    assert.equal(c.welcome.subprotocol, 'switchyard.v1.msgpack');
    assert.ok(c.history.every((f) => typeof f === 'object' && !f.type.startsWith('__')));
    const topic = `events.${ORG}.mp.round.trip`;
    const ok = await c.request({ type: 'subscribe', topic });
    assert.equal(ok.type, 'ok');
    const data = { n: 7, f: 1.5, s: 'ü', list: [1, null, true], nested: { k: 'v' }, big: 2 ** 40 };
    const id = await node.publishOk(pubToken, topic, data);
    const ev = await c.waitEvent((e) => e.id === id);
    assert.deepEqual(
      { type: ev.type, subscription: ev.subscription, topic: ev.topic, id: ev.id, data: ev.data },
      { type: 'event', subscription: topic, topic, id, data },
    );
    assert.equal(typeof ev.ts, 'number');
    // A publish from this client, as a msgpack map, comes back as an event with the same data.
    const pubOk = await c.request({ type: 'publish', topic, data: { from: 'client', n: [1, 2] } });
    assert.equal(pubOk.type, 'ok', JSON.stringify(pubOk));
    const own = await c.waitEvent((e) => e.id === pubOk.event_id);
    assert.deepEqual(own.data, { from: 'client', n: [1, 2] });
    const bad = await c.request({ type: 'dance' });
    assert.equal(bad.type, 'error');
    assert.equal(bad.code, 'bad_request');
    const forbidden = await c.request({ type: 'subscribe', topic: 'events.org_other.>' });
    assert.equal(forbidden.type, 'error');
    assert.equal(forbidden.code, 'forbidden');
    const un = await c.request({ type: 'unsubscribe', topic });
    assert.equal(un.type, 'ok');
    // A binary frame that is not a map, and one that is not msgpack: error maps, still open.
    c.ws.send(Buffer.from([0x92, 0x01, 0x02]));
    c.ws.send(Buffer.from([0xc1]));
    await waitUntil(() => c.history.filter((f) => f.type === 'error' && f.message === 'a binary frame must be one msgpack map').length === 2, {
      message: 'two error maps',
    });
    // Text frames stay JSON requests, answered in msgpack.
    c.ws.send(JSON.stringify({ type: 'subscribe', id: 'txt', topic }));
    const txt = await c.waitFor((f) => f.id === 'txt');
    assert.equal(txt.type, 'ok');
    assert.equal(c.closeInfo, null);
  });

  it('json and ndjson connections refuse binary frames with an error and stay open', T, async (t) => {
    for (const name of ['json', 'ndjson']) {
      const c = await connect(t, [`switchyard.v1.${name}`]);
      c.ws.send(Buffer.from([0x80]));
      const err = await c.waitFor((f) => f.type === 'error');
      assert.equal(err.code, 'bad_request');
      await c.assertAlive(`events.${ORG}.alive.${name}`);
    }
  });

  it('subscribers of every subprotocol receive the same event', T, async (t) => {
    const topic = `events.${ORG}.mixed.all.done`;
    const clients = [];
    for (const name of ['json', 'ndjson', 'msgpack', 'json', 'msgpack']) {
      const c = await connect(t, [`switchyard.v1.${name}`]);
      await c.subscribe(topic);
      clients.push(c);
    }
    const id = await node.publishOk(pubToken, topic, { hello: 'all' });
    for (const c of clients) {
      const ev = await c.waitEvent((e) => e.id === id);
      assert.deepEqual(ev.data, { hello: 'all' }, c.format);
    }
  });
});
