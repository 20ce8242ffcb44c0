// The enrollment service shares the mesh's reload path (issue 12: one TLS reload implementation):
// when the CA revokes a node, the service's CRL file changes, new handshakes use it, and the node's
// open keep-alive connection to the service — on which it could otherwise still call /renew — is
// cut within a second, while another node's connection stays open.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import https from 'node:https';
import type { Socket } from 'node:net';
import { enrollFixture, enrollNode, type Fixture, type EnrolledNode } from './helpers/enroll.ts';
import { revoke } from '../lib/ops/revoke.ts';

let fx: Fixture;
test.before(async () => {
  fx = await enrollFixture();
});
test.after(async () => {
  await fx?.close();
});

function keepAlive(
  node: EnrolledNode,
): Promise<{ closedAt?: number; again: () => Promise<{ status: number; reused: boolean }>; agent: https.Agent }> {
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: 1,
    cert: node.cert,
    key: node.key,
    ca: fx.chain,
    servername: 'ct110.mesh',
  });
  const get = () =>
    new Promise<{ status: number; reused: boolean; socket: Socket }>((resolve, reject) => {
      const req = https.get(
        { host: '127.0.0.1', port: fx.service.port, path: '/healthz', agent, servername: 'ct110.mesh' },
        (res) => {
          const socket = res.socket;
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, socket }));
        },
      );
      req.on('error', reject);
    });
  return get().then(({ socket }) => {
    const o: { closedAt?: number; again: () => Promise<{ status: number; reused: boolean }>; agent: https.Agent } = {
      agent,
      again: () => get().then(({ status, reused }) => ({ status, reused })),
    };
    socket.once('close', () => {
      o.closedAt = performance.now();
    });
    return o;
  });
}

test("a revoked node's open connection to the service is cut ≤ 1 s after the CRL is rebuilt; another node's stays", async () => {
  const victim = await keepAlive(await enrollNode(fx, 'ct150.mesh'));
  const other = await keepAlive(await enrollNode(fx, 'ct151.mesh'));
  try {
    await revoke(fx.ca, 'ct150', { reason: 'keyCompromise' });
    const written = performance.now();
    for (let i = 0; i < 150 && victim.closedAt === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    const ms = Math.round((victim.closedAt ?? Infinity) - written);
    console.log(`    ct150's keep-alive connection to the service closed ${ms} ms after revoke wrote the CRL`);
    assert.ok(ms <= 1000, `${ms} ms`);
    assert.is(other.closedAt, undefined, 'the valid node was cut too');
    assert.equal(await other.again(), { status: 200, reused: true });
  } finally {
    victim.agent.destroy();
    other.agent.destroy();
  }
});

test.run();
