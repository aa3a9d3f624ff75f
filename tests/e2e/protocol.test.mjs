// RFC 6455 conformance of the WebSocket read path, with a raw TCP client
// (lib/raw.mjs): every protocol violation is answered with a close frame of
// the right code, after which the server closes TCP itself, at once (the
// nodes run with --close-timeout 60s, so "at once" is EOF within a few
// seconds, without the client ever sending its close frame), and logs at
// most one line about that connection.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, waitUntil, withTimeout } from './lib/node.mjs';
import { rawConnect, frame, closePayload, peerLines, OP, RSV1, RSV2, RSV3 } from './lib/raw.mjs';

const MAX_FRAME = 65536;
const CLOSE_MS = 5000; // a violation is answered with a close frame within this
const END_MS = 3000; // ... and TCP is closed by the server within this (close timeout is 60 s)
const T = { timeout: 30000 };
const FLAGS = ['--close-timeout', '60s', '--max-frame-size', String(MAX_FRAME)];

const utf8ok = (b) => {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
};

/** Waits for the close frame with `code`, then for the server to close TCP without our close frame. */
async function expectViolation(node, c, code, what) {
  let close;
  try {
    close = await c.waitClose({ timeout: CLOSE_MS });
  } catch (e) {
    throw new Error(`${what}: expected close ${code}: ${e.message}`);
  }
  assert.equal(close.code, code, `${what}: got close ${close.code} (reason ${JSON.stringify(close.reason)}), expected ${code}`);
  assert.ok(utf8ok(close.reasonBytes), `${what}: the close reason must be valid UTF-8`);
  try {
    await c.waitEnd({ timeout: END_MS });
  } catch {
    throw new Error(
      `${what}: got close ${code}, but the server did not close TCP within ${END_MS} ms without the client's close frame ` +
        `(--close-timeout 60s); ${peerLines(node.stderr, c.localPort).length} log line(s) for the peer so far`,
    );
  }
  assert.ok(c.closeBeforeEnd, `${what}: the close frame must precede EOF`);
  assert.equal(c.framesAfterClose, 0, `${what}: the server sent frames after its close frame: ${c.dump()}`);
  const lines = peerLines(node.stderr, c.localPort);
  assert.ok(lines.length <= 1, `${what}: ${lines.length} log lines for 127.0.0.1:${c.localPort}, expected at most one:\n${lines.slice(0, 5).join('\n')}`);
  return close;
}

/** A syntactically valid auth frame, optionally padded with spaces to exactly `size` bytes. */
function authJson(token, { id = 'a1', size } = {}) {
  const base = JSON.stringify({ type: 'auth', token, id });
  if (size === undefined) return base;
  const pad = size - Buffer.byteLength(base);
  assert.ok(pad >= 0, `auth frame is already ${Buffer.byteLength(base)} bytes`);
  return base.slice(0, -1) + ' '.repeat(pad) + '}';
}

/** Splits a buffer at the given byte offsets into fragments: text FIN=0, continuations, last FIN=1. */
function fragments(buf, cuts, { final = true } = {}) {
  const parts = [];
  let prev = 0;
  for (const c of [...cuts, buf.length]) {
    parts.push(buf.subarray(prev, c));
    prev = c;
  }
  return Buffer.concat(parts.map((p, i) => frame({ opcode: i === 0 ? OP.text : OP.cont, fin: final && i === parts.length - 1, payload: p })));
}

describe('protocol violations before authentication', () => {
  let node;
  before(async () => {
    node = await startNode(FLAGS);
  });
  after(async () => {
    await node?.stop();
  });

  const open = (t) => rawConnect(node, { t });
  const violation = (c, code, what) => expectViolation(node, c, code, what);

  it('1. an unmasked client frame -> 1002', T, async (t) => {
    const c = await open(t);
    c.send({ opcode: OP.text, payload: '{"type":"subscribe","id":"u1","topic":"events.org_123.a"}', mask: false });
    await violation(c, 1002, 'unmasked text frame');
    assert.ok(!c.frames.some((f) => f.json?.id === 'u1'), 'the unmasked frame must not be executed');
  });

  for (const [name, bit] of [
    ['RSV1', RSV1],
    ['RSV2', RSV2],
    ['RSV3', RSV3],
  ]) {
    it(`2. ${name} set -> 1002`, T, async (t) => {
      const c = await open(t);
      c.send({ opcode: OP.text, rsv: bit, payload: '{"type":"subscribe","id":"r1","topic":"events.org_123.a"}' });
      await violation(c, 1002, `${name} set`);
    });
  }

  it('3. reserved opcodes 3-7 and 0xB-0xF -> 1002', T, async (t) => {
    const ops = [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf];
    const results = await Promise.allSettled(
      ops.map(async (op) => {
        const c = await open(t);
        c.send({ opcode: op, payload: op >= 8 ? 'x' : '{"type":"auth"}' });
        await violation(c, 1002, `opcode 0x${op.toString(16)}`);
      }),
    );
    const failed = results.map((r, i) => (r.status === 'rejected' ? `0x${ops[i].toString(16)}: ${r.reason.message.split('\n')[0]}` : null)).filter(Boolean);
    if (failed.length) assert.fail(`${failed.length} of ${ops.length} reserved opcodes not answered as specified:\n${failed.join('\n')}`);
  });

  it('4a. a ping with a 126-byte payload (16-bit length form) -> 1002', T, async (t) => {
    const c = await open(t);
    c.send({ opcode: OP.ping, payload: Buffer.alloc(126, 0x61) });
    await violation(c, 1002, 'ping with 126 bytes');
    assert.ok(!c.frames.some((f) => f.opcode === OP.pong), 'an oversized ping must not be answered with a pong');
  });

  it('4b. a ping with FIN=0 -> 1002', T, async (t) => {
    const c = await open(t);
    c.send({ opcode: OP.ping, fin: false, payload: 'frag' });
    await violation(c, 1002, 'fragmented ping');
  });

  it('5a. a 64-bit length with the top bit set -> 1002 (header alone)', T, async (t) => {
    const c = await open(t);
    c.send({ opcode: OP.text, lengthForm: '64', lengthOverride: 0x8000000000000000n });
    await violation(c, 1002, '64-bit length 0x8000000000000000');
  });

  it('6a. a non-minimal 16-bit length carrying 10 -> 1002', T, async (t) => {
    const c = await open(t);
    c.send({ opcode: OP.text, lengthForm: '16', payload: '{"a":1234}' });
    await violation(c, 1002, '16-bit form for a 10-byte payload');
  });

  it('6b. a non-minimal 64-bit length carrying 200 -> 1002', T, async (t) => {
    const c = await open(t);
    c.send({ opcode: OP.text, lengthForm: '64', payload: `{"a":"${'x'.repeat(192)}"}` });
    await violation(c, 1002, '64-bit form for a 200-byte payload');
  });

  it(`7a. a single text frame of ${MAX_FRAME + 1} bytes -> 1009`, T, async (t) => {
    const c = await open(t);
    c.write(frame({ opcode: OP.text, payload: authJson('x', { size: MAX_FRAME + 1 }) }));
    await violation(c, 1009, `text frame of ${MAX_FRAME + 1} bytes`);
  });

  it(`7b. fragments of 4 KiB adding up to more than ${MAX_FRAME} bytes -> 1009 (no final fragment needed)`, T, async (t) => {
    const c = await open(t);
    const piece = Buffer.alloc(4096, 0x20); // spaces
    const n = MAX_FRAME / 4096 + 1; // 17 fragments: 69632 bytes, all FIN=0
    c.write(Buffer.concat(Array.from({ length: n }, (_, i) => frame({ opcode: i === 0 ? OP.text : OP.cont, fin: false, payload: piece }))));
    await violation(c, 1009, `${n} fragments of 4096 bytes`);
  });

  it(`7c. a message of exactly ${MAX_FRAME} bytes is accepted, in one frame and in 16 fragments`, T, async (t) => {
    const one = await open(t);
    one.sendText(authJson(node.token(), { id: 'exact1', size: MAX_FRAME }));
    await one.waitJson((j) => j.type === 'welcome', { what: 'welcome after a 64 KiB auth frame' });
    const ok1 = await one.waitJson((j) => j.id === 'exact1', { what: 'the reply to a 64 KiB auth frame' });
    assert.equal(ok1.type, 'ok', JSON.stringify(ok1));

    const frag = await open(t);
    const msg = Buffer.from(authJson(node.token(), { id: 'exact2', size: MAX_FRAME }));
    frag.write(fragments(msg, Array.from({ length: 15 }, (_, i) => (i + 1) * 4096)));
    await frag.waitJson((j) => j.type === 'welcome', { what: 'welcome after a 64 KiB auth message in 16 fragments' });
    const ok2 = await frag.waitJson((j) => j.id === 'exact2', { what: 'the reply to the fragmented auth message' });
    assert.equal(ok2.type, 'ok', JSON.stringify(ok2));
    assert.equal(one.closeFrame, null, 'the 64 KiB client was closed');
    assert.equal(frag.closeFrame, null, 'the fragmented 64 KiB client was closed');
  });

  it('8a. a continuation frame with no message started -> 1002', T, async (t) => {
    const c = await open(t);
    c.send({ opcode: OP.cont, payload: '{"type":"auth"}' });
    await violation(c, 1002, 'continuation without a message');
  });

  it('8b. a new text frame while a fragmented message is open -> 1002', T, async (t) => {
    const c = await open(t);
    c.write(Buffer.concat([frame({ opcode: OP.text, fin: false, payload: '{"type":' }), frame({ opcode: OP.text, payload: '"auth"}' })]));
    await violation(c, 1002, 'text frame inside a fragmented message');
  });

  it('8c. control frames between fragments are allowed (RFC 6455 5.4): ping answered, message completes', T, async (t) => {
    const c = await open(t);
    const msg = Buffer.from(authJson(node.token(), { id: 'mid' }));
    c.write(
      Buffer.concat([
        frame({ opcode: OP.text, fin: false, payload: msg.subarray(0, 20) }),
        frame({ opcode: OP.ping, payload: 'between' }),
        frame({ opcode: OP.cont, fin: true, payload: msg.subarray(20) }),
      ]),
    );
    const pong = await c.waitFrame((f) => f.opcode === OP.pong, { what: 'the pong to a ping between fragments', timeout: CLOSE_MS });
    assert.equal(pong.payload.toString(), 'between');
    await c.waitJson((j) => j.type === 'welcome', { what: 'welcome after a fragmented auth message' });
    const ok = await c.waitJson((j) => j.id === 'mid');
    assert.equal(ok.type, 'ok', JSON.stringify(ok));
  });

  const badUtf8 = [
    ['a lone 0xFF', [0xff]],
    ['overlong 0xC0 0xAF', [0xc0, 0xaf]],
    ['a surrogate 0xED 0xA0 0x80', [0xed, 0xa0, 0x80]],
    ['above U+10FFFF 0xF4 0x90 0x80 0x80', [0xf4, 0x90, 0x80, 0x80]],
  ];
  for (const [name, bytes] of badUtf8) {
    it(`9. invalid UTF-8 in a text message (${name}) -> 1007`, T, async (t) => {
      const c = await open(t);
      const msg = Buffer.concat([Buffer.from('{"type":"auth","id":"u8","token":"'), Buffer.from(bytes), Buffer.from('"}')]);
      c.sendText(msg);
      await violation(c, 1007, `text with ${name}`);
      assert.ok(!c.frames.some((f) => f.json?.type === 'error'), `invalid UTF-8 must not reach the JSON layer: ${c.dump()}`);
    });
  }

  it('9. a truncated UTF-8 sequence at the end of a final frame -> 1007', T, async (t) => {
    const c = await open(t);
    // the message ends with the first two bytes of U+20AC (E2 82 AC)
    c.sendText(Buffer.concat([Buffer.from('{"type":"auth","id":"tr"}'), Buffer.from([0xe2, 0x82])]));
    await violation(c, 1007, 'truncated sequence at the end');
  });

  it('9. a truncated sequence at the end of a fragmented message -> 1007', T, async (t) => {
    const c = await open(t);
    c.write(
      Buffer.concat([
        frame({ opcode: OP.text, fin: false, payload: '{"type":"auth","id":"tr2"}' }),
        frame({ opcode: OP.cont, fin: true, payload: Buffer.from([0xf0, 0x9f, 0x98]) }),
      ]),
    );
    await violation(c, 1007, 'fragmented message ending inside a code point');
  });

  it('9. fail fast: a first fragment (FIN=0) with an invalid byte -> 1007 with no further fragment', T, async (t) => {
    const c = await open(t);
    c.send({ opcode: OP.text, fin: false, payload: Buffer.concat([Buffer.from('{"type":"auth","id":"'), Buffer.from([0xff]), Buffer.from('xx')]) });
    await violation(c, 1007, 'invalid byte in a non-final fragment');
  });

  it('9. valid UTF-8 split inside code points across fragments is accepted (welcome + ok)', T, async (t) => {
    const id = 'é€😀';
    const msg = Buffer.from(JSON.stringify({ type: 'auth', token: node.token(), id }));
    const at = (s, k) => msg.indexOf(Buffer.from(s)) + k;
    const single = await open(t);
    single.write(fragments(msg, [at('😀', 2)])); // inside the 4 bytes of U+1F600
    await single.waitJson((j) => j.type === 'welcome', { what: 'welcome (split inside 😀)' });
    const ok = await single.waitJson((j) => j.id === id, { what: 'the auth reply (split inside 😀)' });
    assert.equal(ok.type, 'ok', JSON.stringify(ok));

    const many = await open(t);
    many.write(fragments(msg, [at('é', 1), at('€', 1), at('€', 2), at('😀', 1), at('😀', 3)]));
    await many.waitJson((j) => j.type === 'welcome', { what: 'welcome (split inside é, € and 😀)' });
    const ok2 = await many.waitJson((j) => j.id === id, { what: 'the auth reply (split inside é, € and 😀)' });
    assert.equal(ok2.type, 'ok', JSON.stringify(ok2));
  });

  it('10a. a close frame with a 1-byte payload -> 1002', T, async (t) => {
    const c = await open(t);
    c.send({ opcode: OP.close, payload: Buffer.from([0x03]) });
    await violation(c, 1002, 'close with 1 byte');
  });

  it('10b. close codes 0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999 -> 1002', T, async (t) => {
    const codes = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999];
    const results = await Promise.allSettled(
      codes.map(async (code) => {
        const c = await open(t);
        c.send({ opcode: OP.close, payload: closePayload(code) });
        await violation(c, 1002, `close code ${code}`);
      }),
    );
    const failed = results.map((r, i) => (r.status === 'rejected' ? `${codes[i]}: ${r.reason.message.split('\n')[0]}` : null)).filter(Boolean);
    if (failed.length) assert.fail(`${failed.length} of ${codes.length} invalid close codes not answered with 1002:\n${failed.join('\n')}`);
  });

  it('10c. valid close codes are echoed and TCP is closed at once', T, async (t) => {
    const codes = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999];
    const results = await Promise.allSettled(
      codes.map(async (code) => {
        const c = await open(t);
        c.send({ opcode: OP.close, payload: closePayload(code) });
        await violation(c, code, `client close ${code}`);
      }),
    );
    const failed = results.map((r, i) => (r.status === 'rejected' ? `${codes[i]}: ${r.reason.message.split('\n')[0]}` : null)).filter(Boolean);
    if (failed.length) assert.fail(`${failed.length} of ${codes.length} valid close codes not echoed as specified:\n${failed.join('\n')}`);
  });

  it('10d. an empty close payload -> server close 1000', T, async (t) => {
    const c = await open(t);
    c.send({ opcode: OP.close });
    const close = await violation(c, 1000, 'empty close');
    assert.ok(close.payloadLength >= 2, 'the server close frame must carry a code');
  });

  it('10e. a close reason that is invalid UTF-8 -> 1007', T, async (t) => {
    const c = await open(t);
    c.send({ opcode: OP.close, payload: closePayload(1000, Buffer.from([0x62, 0x79, 0x65, 0xc0, 0xaf])) });
    await violation(c, 1007, 'close reason with an overlong sequence');
  });

  it('10f. a valid close with a UTF-8 reason is echoed', T, async (t) => {
    const c = await open(t);
    c.send({ opcode: OP.close, payload: closePayload(4000, 'au revoir, été 😀') });
    await violation(c, 4000, 'close 4000 with a UTF-8 reason');
  });

  it('12a. ping -> pong with the identical payload (0 and 125 bytes)', T, async (t) => {
    const c = await open(t);
    const big = Buffer.from(Array.from({ length: 125 }, (_, i) => (i * 37 + 11) & 0xff));
    c.send({ opcode: OP.ping });
    const p0 = await c.waitFrame((f) => f.opcode === OP.pong, { what: 'a pong to an empty ping' });
    assert.equal(p0.payload.length, 0, 'pong to an empty ping must be empty');
    assert.equal(p0.fin, true);
    c.send({ opcode: OP.ping, payload: big });
    const p1 = await c.waitFrame((f) => f.opcode === OP.pong && f !== p0, { what: 'a pong to a 125-byte ping' });
    assert.deepEqual(p1.payload, big, 'pong payload must equal the ping payload');
    assert.equal(p1.masked, false, 'server frames must not be masked');
    assert.equal(c.closeFrame, null, `the connection must stay open: ${c.dump()}`);
  });

  it('12b. a binary frame -> error bad_request; the connection stays open', T, async (t) => {
    const c = await open(t);
    c.send({ opcode: OP.binary, payload: Buffer.from(JSON.stringify({ type: 'auth', id: 'b1', token: node.token() })) });
    const err = await c.waitJson((j) => j.type === 'error' || j.type === 'ok' || j.type === 'welcome', { what: 'the reply to a binary frame' });
    assert.equal(err.type, 'error', `binary frame: ${JSON.stringify(err)}`);
    assert.equal(err.code, 'bad_request', JSON.stringify(err));
    // still open: a text auth works afterwards
    c.sendText(authJson(node.token(), { id: 'after-binary' }));
    await c.waitJson((j) => j.type === 'welcome', { what: 'welcome after the binary frame' });
    const ok = await c.waitJson((j) => j.id === 'after-binary');
    assert.equal(ok.type, 'ok', JSON.stringify(ok));
    assert.equal(c.closeFrame, null, `closed after a binary frame: ${c.dump()}`);
  });
});

describe('protocol violations after authentication', () => {
  let node, userToken, pubToken;
  before(async () => {
    node = await startNode(FLAGS);
    userToken = node.token({ sub: 'u_1', org: 'org_123' });
    pubToken = node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] });
  });
  after(async () => {
    await node?.stop();
  });

  async function openAuthed(t) {
    const c = await rawConnect(node, { t, token: userToken });
    const w = await c.waitJson((j) => j.type === 'welcome', { what: 'the welcome frame' });
    assert.equal(c.frames[0].json?.type, 'welcome', 'welcome must be the first frame');
    c.sendJson({ type: 'subscribe', id: 's1', topic: 'events.org_123.proto.>' });
    const ok = await c.waitJson((j) => j.id === 's1', { what: 'the subscribe reply' });
    assert.equal(ok.type, 'ok', JSON.stringify(ok));
    return { c, session: w.session };
  }

  const cases = [
    ['an unmasked frame', 1002, () => frame({ opcode: OP.text, mask: false, payload: '{"type":"subscribe","id":"x","topic":"events.org_123.a"}' })],
    ['RSV1 set', 1002, () => frame({ opcode: OP.text, rsv: RSV1, payload: '{}' })],
    ['opcode 0x3', 1002, () => frame({ opcode: 3, payload: '{}' })],
    ['a continuation without a message', 1002, () => frame({ opcode: OP.cont, payload: '{}' })],
    ['a 64-bit length with the top bit set', 1002, () => frame({ opcode: OP.binary, lengthForm: '64', lengthOverride: 0xffffffffffffffffn })],
    ['invalid UTF-8', 1007, () => frame({ opcode: OP.text, payload: Buffer.from([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d]) })],
    ['a message over --max-frame-size', 1009, () => frame({ opcode: OP.text, payload: Buffer.alloc(MAX_FRAME + 1, 0x20) })],
  ];
  for (const [name, code, bytes] of cases) {
    it(`after auth: ${name} -> ${code}; the node still serves others`, T, async (t) => {
      const { c } = await openAuthed(t);
      c.write(bytes());
      await expectViolation(node, c, code, `after auth, ${name}`);
      // the node is fine and serves others
      const other = await node.connect({ t, token: userToken });
      await other.subscribe('events.org_123.proto.>');
      const id = await node.publishOk(pubToken, 'events.org_123.proto.after', { name });
      await other.waitEvent((e) => e.id === id);
    });
  }
});

describe('crash frame: 64-bit length 0xFFFFFFFFFFFFFFFF on a continuation', () => {
  let node;
  before(async () => {
    node = await startNode(FLAGS);
  });
  after(async () => {
    await node?.stop();
  });

  it('5b. text FIN=0 (1 byte) + continuation of length 2^64-1 -> 1002; the node stays up and serves', T, async (t) => {
    const pubToken = node.token({ sub: 'svc', org: 'org_123', pub: ['events.org_123.>'] });
    const sub = await node.connect({ t, token: node.token({ sub: 'u_sub', org: 'org_123' }) });
    await sub.subscribe('events.org_123.>');

    const c = await rawConnect(node, { t });
    const bytes = Buffer.concat([
      frame({ opcode: OP.text, fin: false, payload: '{' }), // 7 bytes
      frame({ opcode: OP.cont, fin: true, lengthForm: '64', lengthOverride: 0xffffffffffffffffn }), // 14 bytes: header + mask key, no payload
    ]);
    c.write(bytes);
    let violationError;
    try {
      await expectViolation(node, c, 1002, 'continuation with length 2^64-1');
    } catch (e) {
      violationError = e;
    }
    // whatever the close looked like, the node must be alive and serving
    const died = async (e) => {
      const exit = await withTimeout(node.exited, 2000, 'exit').catch(() => null);
      if (exit) assert.fail(`the node died after the crash frame (exit ${JSON.stringify(exit)}; the attacker saw ${c.dump()})\nstderr tail:\n${node.stderr.slice(-1500)}`);
      throw e;
    };
    assert.equal(node.exitInfo, null, `the node died: ${JSON.stringify(node.exitInfo)}\n${node.stderr.slice(-2000)}`);
    const fresh = await node.connect({ t, token: node.token({ sub: 'u_fresh', org: 'org_123' }) }).catch(died);
    assert.equal(fresh.welcome?.type, 'welcome');
    const id = await node.publishOk(pubToken, 'events.org_123.crash.after', { alive: true });
    const ev = await sub.waitEvent((e) => e.id === id, { what: 'an event published after the crash frame' });
    assert.deepEqual(ev.data, { alive: true });
    assert.equal(node.exitInfo, null, `the node died: ${JSON.stringify(node.exitInfo)}`);
    if (violationError) throw violationError;
  });
});

describe('server-initiated close (auth timeout) answered by the client', () => {
  let node;
  before(async () => {
    node = await startNode(['--auth-timeout', '300ms', '--close-timeout', '60s']);
  });
  after(async () => {
    await node?.stop();
  });

  it('11. close 4401 after the auth timeout; the client answers with its close; TCP is closed at once', T, async (t) => {
    const c = await rawConnect(node, { t });
    const close = await c.waitClose({ timeout: 5000 });
    assert.equal(close.code, 4401, `auth timeout close: got ${close.code} ${JSON.stringify(close.reason)}`);
    c.send({ opcode: OP.close, payload: closePayload(4401) });
    const sentAt = Date.now();
    try {
      await c.waitEnd({ timeout: END_MS });
    } catch {
      assert.fail(`the server did not close TCP within ${END_MS} ms of the client's close frame (--close-timeout 60s)`);
    }
    assert.ok(c.ended.at - sentAt < END_MS);
    assert.equal(c.framesAfterClose, 0, `frames after the close frame: ${c.dump()}`);
  });
});

describe('log lines per violating connection', () => {
  let node;
  before(async () => {
    node = await startNode(FLAGS);
  });
  after(async () => {
    await node?.stop();
  });

  it('13. at most one log line per violating connection, even when the client keeps sending', { timeout: 45000 }, async (t) => {
    const ping = frame({ opcode: OP.ping, payload: 'more' });
    const junk = Buffer.concat([ping, frame({ opcode: OP.text, mask: false, payload: 'x' }), frame({ opcode: 5, payload: 'y' }), Buffer.alloc(512, 0xff)]);
    const kinds = [
      ['unmasked', 1002, frame({ opcode: OP.text, mask: false, payload: '{}' })],
      ['RSV2', 1002, frame({ opcode: OP.text, rsv: RSV2, payload: '{}' })],
      ['opcode 0xB', 1002, frame({ opcode: 0xb, payload: '' })],
      ['continuation first', 1002, frame({ opcode: OP.cont, payload: '{}' })],
      ['bad close code', 1002, frame({ opcode: OP.close, payload: closePayload(1005) })],
      ['invalid UTF-8', 1007, frame({ opcode: OP.text, payload: Buffer.from([0x22, 0xff, 0x22]) })],
      ['oversized', 1009, frame({ opcode: OP.text, payload: Buffer.alloc(MAX_FRAME + 1, 0x20) })],
    ];
    const clients = [];
    const results = await Promise.allSettled(
      kinds.map(async ([name, code, bad]) => {
        const c = await rawConnect(node, { t });
        clients.push([name, c]);
        // the violation followed at once by more frames and garbage
        c.write(Buffer.concat([bad, ...Array(20).fill(ping), junk]));
        const close = await c.waitClose({ timeout: CLOSE_MS });
        assert.equal(close.code, code, `${name}: close code`);
        // keep sending after the close frame, until the server cuts TCP
        const keepSending = setInterval(() => {
          if (c.alive) c.write(Buffer.concat([...Array(20).fill(ping), junk]));
        }, 10);
        try {
          await c.waitEnd({ timeout: END_MS });
        } catch {
          throw new Error(`${name}: no EOF within ${END_MS} ms of close ${code}; ${peerLines(node.stderr, c.localPort).length} log line(s) for the peer so far`);
        } finally {
          clearInterval(keepSending);
        }
      }),
    );
    // Barrier: every violating connection is gone from the node (so it will read and log no more).
    await waitUntil(async () => (await node.metrics()).get('switchyard_connections') === 0, {
      timeout: 10000,
      message: 'switchyard_connections to drop to 0',
    }).catch(() => {});
    await node.metrics(); // one more round trip for stderr to arrive
    const counts = clients.map(([name, c]) => [name, peerLines(node.stderr, c.localPort)]);
    const over = counts.filter(([, l]) => l.length > 1).map(([name, l]) => `${name}: ${l.length} lines, e.g. ${l[l.length - 1]}`);
    const failed = results.map((r, i) => (r.status === 'rejected' ? `${kinds[i][0]}: ${r.reason.message.split('\n')[0]}` : null)).filter(Boolean);
    if (over.length) assert.fail(`${over.length} of ${kinds.length} violating connections logged more than one line:\n${over.join('\n')}${failed.length ? `\nalso:\n${failed.join('\n')}` : ''}`);
    if (failed.length) assert.fail(failed.join('\n'));
  });
});
