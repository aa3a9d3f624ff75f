// A raw WebSocket client over node:net for protocol-violation tests.
//
// - rawConnect(node, {token}) does the HTTP upgrade itself (GET /v1/ws, key,
//   version 13), checks the 101 and Sec-WebSocket-Accept, and hands back a
//   RawClient.
// - frame({...}) builds any client frame, valid or not: unmasked, reserved
//   bits, reserved opcodes, forced 16/64-bit length forms, a length field
//   that disagrees with the payload (lengthOverride).
// - RawClient parses the server's frames incrementally, keeps them all, and
//   lets a test wait for a frame, for the server's close frame, or for the
//   server closing TCP (EOF or reset), recording whether the close frame
//   came first.
import net from 'node:net';
import crypto from 'node:crypto';
import { waitOn } from './node.mjs';

export const OP = Object.freeze({ cont: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa });
/** Bits of frame({rsv}): RSV1 is 0x40 of the first byte, RSV2 0x20, RSV3 0x10. */
export const RSV1 = 4;
export const RSV2 = 2;
export const RSV3 = 1;

const toBuf = (p) => (p === undefined ? Buffer.alloc(0) : Buffer.isBuffer(p) ? p : typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p));

/**
 * Encodes one client frame.
 * - payload: Buffer | string | byte array
 * - rsv: 0..7 (RSV1=4, RSV2=2, RSV3=1)
 * - mask (default true), maskKey (4 bytes, random by default)
 * - lengthForm: 'auto' (minimal) | '7' | '16' | '64' to force an encoding
 * - lengthOverride: number or BigInt written as-is into the length field
 *   (the 7-bit field for '7'/small auto, else the 16/64-bit field); the
 *   payload bytes are still the real payload.
 */
export function frame({ fin = true, rsv = 0, opcode, payload, mask = true, maskKey, lengthOverride, lengthForm = 'auto' } = {}) {
  if (opcode === undefined) throw new Error('frame(): opcode is required');
  const data = toBuf(payload);
  const len = lengthOverride !== undefined ? BigInt(lengthOverride) : BigInt(data.length);
  let form = lengthForm;
  if (form === 'auto') form = len < 126n ? '7' : len < 65536n ? '16' : '64';
  const head = [((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)) & 0xff];
  const m = mask ? 0x80 : 0;
  let ext = Buffer.alloc(0);
  if (form === '7') head.push(m | Number(len & 0x7fn));
  else if (form === '16') {
    head.push(m | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(Number(len & 0xffffn));
  } else if (form === '64') {
    head.push(m | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(len & 0xffffffffffffffffn);
  } else throw new Error(`frame(): bad lengthForm ${lengthForm}`);
  let body = data;
  let key = Buffer.alloc(0);
  if (mask) {
    key = maskKey ? toBuf(maskKey) : crypto.randomBytes(4);
    if (key.length !== 4) throw new Error('frame(): maskKey must be 4 bytes');
    body = Buffer.allocUnsafe(data.length);
    for (let i = 0; i < data.length; i++) body[i] = data[i] ^ key[i & 3];
  }
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

/** Payload of a close frame: 2-byte code (omitted when code is undefined) and reason bytes. */
export function closePayload(code, reason = Buffer.alloc(0)) {
  const r = toBuf(reason);
  if (code === undefined) return r;
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, r]);
}

/** Decodes server frames from a byte stream, incrementally. */
class FrameReader {
  constructor(onFrame) {
    this.buf = Buffer.alloc(0);
    this.onFrame = onFrame;
  }

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`server frame with absurd length ${big}`);
        len = Number(big);
        off = 10;
      }
      const keyOff = off;
      if (masked) off += 4;
      if (b.length < off + len) return;
      let payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= b[keyOff + (i & 3)];
      this.buf = b.subarray(off + len);
      this.onFrame({ fin: (b[0] & 0x80) !== 0, rsv: (b[0] >> 4) & 7, opcode: b[0] & 0x0f, masked, payload });
    }
  }
}

export class RawClient {
  constructor(sock, port) {
    this.sock = sock;
    this.port = port;
    this.localPort = sock.localPort;
    this.frames = []; // every server frame, in order
    this.closeFrame = null; // {code, reason, reasonBytes, at} of the server's close frame
    this.closeBeforeEnd = false; // the close frame arrived before EOF
    this.framesAfterClose = 0; // frames the server sent after its close frame (must be 0)
    this.ended = null; // {at, how} once the server closed TCP
    this.errors = [];
    this.bytesWritten = 0;
    this.protocolErrors = [];
    this.waiters = new Set();
    this.reader = new FrameReader((f) => this._onFrame(f));
    sock.on('data', (d) => {
      try {
        this.reader.push(d);
      } catch (e) {
        this.protocolErrors.push(e.message);
      }
      this._notify();
    });
    sock.on('end', () => this._ended('end'));
    sock.on('close', () => this._ended('close'));
    sock.on('error', (e) => {
      this.errors.push(e);
      this._notify();
    });
  }

  _onFrame(f) {
    f.at = Date.now();
    if (f.opcode === OP.text) {
      f.text = f.payload.toString('utf8');
      try {
        f.json = JSON.parse(f.text);
      } catch {
        f.json = undefined;
      }
    }
    if (this.closeFrame) this.framesAfterClose++;
    if (f.opcode === OP.close && !this.closeFrame) {
      const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
      const reasonBytes = f.payload.subarray(Math.min(2, f.payload.length));
      this.closeFrame = { code, reason: reasonBytes.toString('utf8'), reasonBytes, at: f.at, payloadLength: f.payload.length };
      if (!this.ended) this.closeBeforeEnd = true;
    }
    this.frames.push(f);
  }

  _ended(how) {
    if (!this.ended) this.ended = { at: Date.now(), how, errors: this.errors.map((e) => e.code ?? e.message) };
    this._notify();
  }

  _notify() {
    for (const w of [...this.waiters]) w();
  }

  /** Short description of what the server sent, for assertion messages. */
  dump() {
    const fs = this.frames.slice(-6).map((f) =>
      f.opcode === OP.text ? `text ${f.text.slice(0, 160)}` : f.opcode === OP.close ? `close ${this.closeFrame?.code} ${JSON.stringify(this.closeFrame?.reason)}` : `op${f.opcode}(${f.payload.length}B)`,
    );
    return `[${this.frames.length > 6 ? `...${this.frames.length - 6} earlier, ` : ''}${fs.join(' | ')}] ended=${JSON.stringify(this.ended)}`;
  }

  _wait(check, { timeout = 10000, what = 'a condition' } = {}) {
    return waitOn(this.waiters, check, {
      timeout,
      timeoutError: () => new Error(`timed out after ${timeout} ms waiting for ${what}; server sent ${this.dump()}`),
    });
  }

  /** Resolves with the first server frame matching pred (searching all frames received so far). */
  waitFrame(pred, { timeout = 10000, what = 'a matching server frame', from = 0 } = {}) {
    return this._wait(
      () => {
        for (let i = from; i < this.frames.length; i++) if (pred(this.frames[i])) return { value: this.frames[i] };
        if (this.ended) throw new Error(`the server closed TCP while waiting for ${what}; server sent ${this.dump()}`);
        return null;
      },
      { timeout, what },
    );
  }

  /** Resolves with the first JSON text frame matching pred. */
  waitJson(pred = () => true, opts = {}) {
    return this.waitFrame((f) => f.opcode === OP.text && f.json !== undefined && pred(f.json), { what: 'a JSON text frame', ...opts }).then((f) => f.json);
  }

  /** Resolves with {code, reason, at} of the server's close frame; rejects on EOF without one. */
  waitClose({ timeout = 10000 } = {}) {
    return this._wait(
      () => {
        if (this.closeFrame) return { value: this.closeFrame };
        if (this.ended) throw new Error(`the server closed TCP without a close frame; server sent ${this.dump()}`);
        return null;
      },
      { timeout, what: "the server's close frame" },
    );
  }

  /** Resolves once the server closed TCP (EOF or reset): {at, how, closeBeforeEnd}. */
  waitEnd({ timeout = 10000 } = {}) {
    return this._wait(() => (this.ended ? { value: { ...this.ended, closeBeforeEnd: this.closeBeforeEnd } } : null), {
      timeout,
      what: 'the server to close TCP',
    });
  }

  /** Writes raw bytes; returns false when the socket is gone or its buffer is full. Errors are recorded, not thrown. */
  write(bytes) {
    if (this.sock.destroyed || this.sock.writableEnded) return false;
    const b = toBuf(bytes);
    this.bytesWritten += b.length;
    try {
      return this.sock.write(b);
    } catch (e) {
      this.errors.push(e);
      return false;
    }
  }

  /** Writes frame(opts). */
  send(opts) {
    return this.write(frame(opts));
  }

  /** Writes one masked text frame. */
  sendText(text, opts = {}) {
    return this.send({ opcode: OP.text, payload: text, ...opts });
  }

  sendJson(obj, opts = {}) {
    return this.sendText(JSON.stringify(obj), opts);
  }

  /** Resolves when the socket can take more bytes (or is gone). */
  drained() {
    if (this.sock.destroyed || !this.sock.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.sock.off('drain', done);
        this.sock.off('close', done);
        resolve();
      };
      this.sock.once('drain', done);
      this.sock.once('close', done);
    });
  }

  get alive() {
    return !this.ended && !this.sock.destroyed;
  }

  destroy() {
    this.sock.destroy();
  }
}

/**
 * Opens a TCP connection to `node` (a Node from node.mjs, or {port}), upgrades
 * it on `path` (token as ?token= when given) and resolves with a RawClient.
 * Bytes the server sent right after the 101 are parsed as frames.
 */
export function rawConnect(node, { token, path = '/v1/ws', headers = {}, timeout = 10000, t } = {}) {
  const port = node.port;
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.setNoDelay(true);
    const key = crypto.randomBytes(16).toString('base64');
    const expectAccept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    let head = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(() => fail(new Error(`no 101 within ${timeout} ms`)), timeout);
    const fail = (e) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    };
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 65536) fail(new Error('upgrade response headers too long'));
        return;
      }
      const text = head.subarray(0, end).toString('latin1');
      const rest = head.subarray(end + 4);
      const lines = text.split('\r\n');
      if (!/^HTTP\/1\.1 101 /.test(lines[0])) return fail(new Error(`upgrade answered with ${JSON.stringify(lines[0])}: ${rest.toString('utf8').slice(0, 300)}`));
      const hdrs = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) hdrs[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      if (hdrs['sec-websocket-accept'] !== expectAccept) return fail(new Error(`bad Sec-WebSocket-Accept ${hdrs['sec-websocket-accept']}, expected ${expectAccept}`));
      done = true;
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('error', onErr);
      sock.off('close', onClose);
      const c = new RawClient(sock, port);
      c.upgradeHeaders = hdrs;
      if (t) t.after(() => c.destroy());
      if (rest.length) sock.emit('data', rest);
      resolve(c);
    };
    const onErr = (e) => fail(e);
    const onClose = () => fail(new Error('connection closed before the 101'));
    sock.on('data', onData);
    sock.on('error', onErr);
    sock.on('close', onClose);
    sock.on('connect', () => {
      const target = path + (token !== undefined ? `?token=${encodeURIComponent(token)}` : '');
      const extra = Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      sock.write(
        `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
      );
    });
  });
}

/** Lines of `stderr` that mention the peer 127.0.0.1:<port> (not a longer port number). */
export function peerLines(stderr, port) {
  const re = new RegExp(`127\\.0\\.0\\.1:${port}(?!\\d)`);
  return stderr.split('\n').filter((l) => re.test(l));
}

/** VmRSS of a process in bytes. */
export async function rssBytes(pid) {
  const { readFile } = await import('node:fs/promises');
  const s = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(s);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}
