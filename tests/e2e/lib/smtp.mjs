// A real SMTP server for the notification tests: Debian's python3-aiosmtpd
// through lib/smtp_server.py, with STARTTLS (a certificate made for the
// test) and AUTH, and a small MIME reader for what it received.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Whether /usr/bin/python3 can import aiosmtpd. */
export function haveAiosmtpd() {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import aiosmtpd'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the server with STARTTLS and AUTH (`user`/`password`); stops it when
 * `t` ends. Resolves with { port, cert, user, password, messages() }.
 */
export async function startSmtpServer(t, { user = 'mailer', password = 'mail-secret' } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-smtp-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const out = path.join(dir, 'messages.jsonl');
  const proc = spawn('/usr/bin/python3', [path.join(here, 'smtp_server.py'), '--host', '127.0.0.1', '--port', '0',
    '--out', out, '--cert', cert, '--key', key, '--user', user, '--password', password, '--require-tls'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`smtp_server.py did not start: ${stderr}`)), 15000);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      buf += d;
      const m = /ready (\d+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.on('exit', (code) => reject(new Error(`smtp_server.py exited ${code}: ${stderr}`)));
  });
  t.after(() => {
    proc.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    port,
    cert,
    user,
    password,
    /** Every message received so far, parsed. */
    messages() {
      if (!fs.existsSync(out)) return [];
      return fs
        .readFileSync(out, 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => ({ ...JSON.parse(l), ...parseMime(JSON.parse(l).data) }));
    },
  };
}

function headersOf(text) {
  const headers = {};
  for (const line of text.replace(/\r\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return headers;
}

function decodeWords(value) {
  return value.replace(/=\?utf-8\?b\?([^?]*)\?=/gi, (_, b) => Buffer.from(b, 'base64').toString('utf8'));
}

/** { headers, subject, text, html } of a multipart/alternative message. */
export function parseMime(raw) {
  const split = raw.search(/\r?\n\r?\n/);
  const headers = headersOf(raw.slice(0, split));
  const body = raw.slice(split).replace(/^\r?\n\r?\n/, '');
  const result = { headers, subject: decodeWords(headers.subject ?? ''), text: undefined, html: undefined };
  const boundary = /boundary="?([^";]+)"?/i.exec(headers['content-type'] ?? '')?.[1];
  if (!boundary) return result;
  for (const part of body.split(`--${boundary}`)) {
    const at = part.search(/\r?\n\r?\n/);
    if (at < 0) continue;
    const h = headersOf(part.slice(0, at));
    let content = part.slice(at).trim();
    if (/base64/i.test(h['content-transfer-encoding'] ?? '')) content = Buffer.from(content.replace(/\s+/g, ''), 'base64').toString('utf8');
    if (/text\/plain/i.test(h['content-type'] ?? '')) result.text = content;
    if (/text\/html/i.test(h['content-type'] ?? '')) result.html = content;
  }
  return result;
}
