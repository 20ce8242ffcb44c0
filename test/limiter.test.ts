// The brake on bootstrap-secret guessing (lib/service/limiter.ts), against the real `rivet-ca
// serve`. The attacks: failures were counted only after an awaited audit write and datasync, so a
// burst of 2,000 wrong secrets got 20 × 401 for a limit of 10 per minute; and the key was the raw
// address, so one IPv6 /64 (2^64 addresses for one host) had as many budgets as addresses.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { execa } from 'execa';
import { CLI, ROOT, freshCa, snapshot, tempDir } from './helpers/ca.ts';
import { newCsr, SECRET } from './helpers/enroll.ts';
import { spawnServe } from './helpers/serve.ts';
import { issueWithNewKey } from '../lib/ops/operator-issue.ts';
import { nodeId } from '../lib/core/identity.ts';
import { sourceKey } from '../lib/policy/rate-limit.ts';
import type { Ca } from '../lib/ca/handle.ts';

async function serveCli(ca: Ca, listen: string): Promise<{ port: number; stop: () => Promise<string> }> {
  return spawnServe({
    listen,
    args: ['--tls-cert', ca.store.issued('ct110', 'crt'), '--tls-key', ca.store.issued('ct110', 'key')],
    env: { RIVET_CA_DIR: ca.store.dir, RIVET_ENV_FILE: '/dev/null', RIVET_BOOTSTRAP_SECRET: SECRET },
  });
}

type Reply = { status: number; retryAfter?: string; message?: string };

/** POST /enroll with `bearer` over `agent`; a connection the server refuses before HTTP is retried (it was no attempt). */
function enroll(
  port: number,
  host: string,
  agent: https.Agent,
  ca: string,
  bearer: string,
  csr: string,
  localAddress?: string,
): Promise<Reply> {
  const payload = JSON.stringify({ csr });
  const once = () =>
    new Promise<Reply>((resolve, reject) => {
      const req = https.request(
        {
          host,
          port,
          agent,
          ca,
          servername: 'ct110.mesh',
          localAddress,
          method: 'POST',
          path: '/enroll',
          headers: {
            authorization: `Bearer ${bearer}`,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
          },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c;
          });
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              retryAfter: res.headers['retry-after'] as string | undefined,
              message: JSON.parse(text).error?.message,
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  const attempt = (left: number): Promise<Reply> =>
    once().catch((err: NodeJS.ErrnoException) => {
      if (left > 0 && ['ECONNRESET', 'EPIPE', 'ECONNREFUSED'].includes(err.code ?? '')) return attempt(left - 1);
      throw err;
    });
  return attempt(20);
}

const withoutAudit = (ca: Ca) => {
  const s = snapshot(ca.store.dir);
  delete s['audit.log'];
  delete s['.lock'];
  return s;
};

test('a burst of 2,000 wrong secrets from one address: exactly 10 × 401, then 1,990 × 429 with Retry-After; the CA dir unchanged but audit.log', async () => {
  const ca = await freshCa();
  await issueWithNewKey(ca, { kind: 'node', nodeId: nodeId('ct110') });
  const chain = fs.readFileSync(ca.store.chainFile, 'utf8');
  const work = await tempDir('rivet-limiter-');
  const { csr } = await newCsr(work, 'ct150.mesh');
  const s = await serveCli(ca, '127.0.0.1:0');
  try {
    const before = withoutAudit(ca);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 16 }); // under the per-source connection cap
    const t0 = Date.now();
    const replies = await Promise.all(
      Array.from({ length: 2000 }, (_, i) => enroll(s.port, '127.0.0.1', agent, chain, `guess-${i}`, csr, '127.0.3.1')),
    );
    const elapsed = Date.now() - t0;
    agent.destroy();
    const count = (st: number) => replies.filter((r) => r.status === st).length;
    assert.is(count(401), 10, 'exactly the limit of 401s');
    assert.is(count(429), 1990, 'every other attempt 429');
    for (const r of replies.filter((x) => x.status === 429)) {
      assert.ok(
        /^\d+$/.test(r.retryAfter ?? '') && Number(r.retryAfter) >= 1 && Number(r.retryAfter) <= 60,
        `Retry-After ${r.retryAfter}`,
      );
      assert.match(r.message ?? '', /too many failed attempts from 127\.0\.3\.1 — retry in \d+ s/);
    }
    assert.equal(withoutAudit(ca), before, 'the refusals changed nothing but audit.log');
    const lines = fs
      .readFileSync(ca.store.auditLog, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.is(lines.filter((e) => e.reason === 'bad_secret' && e.source === '127.0.3.1').length, 10);
    assert.is(lines.filter((e) => e.event === 'throttle' && e.source === '127.0.3.1').length, 1);
    const other = await enroll(s.port, '127.0.0.1', new https.Agent(), chain, SECRET, csr, '127.0.3.2');
    assert.is(other.status, 200, 'another address still enrolls');
    process.stderr.write(
      `  [limiter] 2,000 wrong secrets in ${elapsed} ms: ${count(401)} × 401, ${count(429)} × 429 (Retry-After ${replies.find((r) => r.status === 429)?.retryAfter} s first)\n`,
    );
  } finally {
    await s.stop();
  }
});

test('on a dual-stack listener IPv4 clients (seen as ::ffff:a.b.c.d) are keyed as IPv4; 200 refusals leave the CA dir byte-identical except audit.log', async () => {
  const ca = await freshCa();
  await issueWithNewKey(ca, { kind: 'node', nodeId: nodeId('ct110') });
  const chain = fs.readFileSync(ca.store.chainFile, 'utf8');
  const { csr } = await newCsr(await tempDir('rivet-limiter-'), 'ct151.mesh');
  const s = await serveCli(ca, '[::]:0'); // dual-stack: IPv4 clients arrive as ::ffff:a.b.c.d
  try {
    const before = withoutAudit(ca);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 8 });
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => enroll(s.port, '127.0.0.1', agent, chain, `guess-${i}`, csr, '127.0.3.3')),
    );
    agent.destroy();
    assert.is(replies.filter((r) => r.status === 401).length, 10);
    assert.match(
      replies.find((r) => r.status === 429)!.message!,
      /from 127\.0\.3\.3 —/,
      'the IPv4-mapped address is keyed as the IPv4 address',
    );
    assert.equal(withoutAudit(ca), before);
    const lines = fs.readFileSync(ca.store.auditLog, 'utf8');
    assert.match(lines, /"source":"::ffff:127\.0\.3\.3"/, 'the audit line keeps the address as seen');
  } finally {
    await s.stop();
  }
});

test('keys: IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64', () => {
  assert.is(sourceKey('203.0.113.7'), '203.0.113.7');
  assert.is(sourceKey('::ffff:203.0.113.7'), '203.0.113.7');
  assert.is(sourceKey('::FFFF:cb00:7107'), '203.0.113.7');
  assert.is(sourceKey('2001:db8:1:2::1'), '2001:db8:1:2::/64');
  assert.is(sourceKey('2001:db8:1:2:ffff:ffff:ffff:fffe'), '2001:db8:1:2::/64');
  assert.is(sourceKey('2001:0db8:0001:0002:0000:0000:0000:0001'), '2001:db8:1:2::/64');
  assert.is(sourceKey('2001:db8:1:3::1'), '2001:db8:1:3::/64');
  assert.is(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.is(sourceKey('::1'), '0:0:0:0::/64');
  assert.is(sourceKey('::'), '0:0:0:0::/64');
  assert.is(sourceKey('1::'), '1:0:0:0::/64');
  assert.is(sourceKey('::ffff:0:1.2.3.4'), '0:0:0:0::/64', 'IPv4-translated (RFC 2765), not mapped');
  assert.is(sourceKey(undefined), 'unknown');
});

test('10 IPv6 addresses in one /64 share one budget; another /64 has its own (real sockets in a private network namespace)', async () => {
  const probe = await execa('unshare', ['-n', 'true'], { reject: false });
  if (probe.exitCode !== 0) {
    process.stderr.write(
      `  [limiter] NOTE: cannot make a network namespace here (${String(probe.stderr).trim()}); the /64 keying is shown in process only (test above)\n`,
    );
    return;
  }
  const ca = await freshCa();
  await issueWithNewKey(ca, { kind: 'node', nodeId: nodeId('ct110') });
  const { csr } = await newCsr(await tempDir('rivet-limiter-'), 'ct152.mesh');
  const addrs = [
    ...Array.from({ length: 10 }, (_, i) => `fd00:1:2:3::${(i + 1).toString(16)}`),
    'fd00:1:2:3::ab',
    'fd00:1:2:4::1',
  ];
  const setup = [
    'ip link set lo up',
    ...addrs.map((a) => `ip -6 addr add ${a}/64 dev lo nodad`),
    'exec node "$0" "$@"',
  ].join(' && ');
  const r = await execa(
    'unshare',
    ['-n', 'sh', '-c', setup, path.join(ROOT, 'test', 'helpers', 'ipv6-budget.mjs'), CLI, ca.store.chainFile],
    {
      reject: false,
      env: {
        RIVET_CA_DIR: ca.store.dir,
        RIVET_ENV_FILE: '/dev/null',
        RIVET_BOOTSTRAP_SECRET: SECRET,
        SECRET,
        CSR: csr,
        TLS_CERT: ca.store.issued('ct110', 'crt'),
        TLS_KEY: ca.store.issued('ct110', 'key'),
      },
    },
  );
  assert.is(r.exitCode, 0, String(r.stderr));
  const out = JSON.parse(String(r.stdout)) as Array<{
    from: string;
    status: number;
    retryAfter: string | null;
    message: string | null;
  }>;
  assert.equal(
    out.slice(0, 10).map((o) => o.status),
    Array(10).fill(401),
    'ten addresses of one /64: ten failures of one budget',
  );
  assert.is(out[10]!.status, 429, 'an eleventh address of that /64 is throttled');
  assert.match(out[10]!.message!, /from fd00:1:2:3::\/64 — retry in \d+ s/);
  assert.ok(Number(out[10]!.retryAfter) >= 1);
  assert.is(out[11]!.status, 401, 'another /64 has its own budget');
  assert.is(out[12]!.status, 200, 'and enrolls with the right secret');
  process.stderr.write(`  [limiter] IPv6 in a private netns: ${out.map((o) => `${o.from} ${o.status}`).join(', ')}\n`);
});

test.run();
