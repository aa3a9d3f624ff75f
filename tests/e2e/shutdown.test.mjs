// Shutdown: SIGTERM closes every client with 1001 and the process exits.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, withTimeout } from './lib/node.mjs';

describe('shutdown', () => {
  let node;
  after(async () => {
    await node?.stop();
  });

  it('SIGTERM closes connected clients with 1001 and the node exits', { timeout: 30000 }, async (t) => {
    node = await startNode([]);
    const token = node.token({ sub: 'u_1', org: 'org_123' });
    const a = await node.connect({ t, token, via: 'header' });
    const b = await node.connect({ t, token, via: 'frame' });
    await a.subscribe('events.org_123.shutdown.>');
    await b.subscribe('events.org_123.shutdown.x');
    node.proc.kill('SIGTERM');
    const [ca, cb] = await Promise.all([a.waitClose(10000), b.waitClose(10000)]);
    assert.equal(ca.code, 1001, `client A close code (reason ${JSON.stringify(ca.reason)})`);
    assert.equal(cb.code, 1001, `client B close code (reason ${JSON.stringify(cb.reason)})`);
    const exit = await withTimeout(node.exited, 10000, 'the node to exit after SIGTERM');
    assert.ok(exit, 'node exited');
  });
});
