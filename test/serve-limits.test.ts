// `rivet-ca serve` under connection attacks, the real CLI on loopback with the descriptor limit
// of the issue's host (ulimit -n 1024). The attacks: 1,003 connections that finished the TLS
// handshake and sent nothing exhausted serve's descriptors (EMFILE): /healthz and /enroll failed
// and a TLS reload was skipped. Now connections are capped (in total, sized from the descriptor
// limit, idle ones closed to make room; per source, refused before TLS) and a handshake must be
// followed by a request within the idle timeout (lib/service/connections.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import https from 'node:https';
import { execa } from 'execa';
import { ROOT, cli, freshCa, tempDir } from './helpers/ca.ts';
import { call, newCsr, SECRET, type Fixture } from './helpers/enroll.ts';
import { issueWithNewKey } from '../lib/ops/operator-issue.ts';
import { nodeId } from '../lib/core/identity.ts';
import type { Ca } from '../lib/ca/handle.ts';
import { spawnServe } from './helpers/serve.ts';

const FLOOD = path.join(ROOT, 'test', 'helpers', 'idle-flood.mjs');
const FD_LIMIT = 1024;

type Serve = { ca: Ca; port: number; pid: number; fx: Fixture; log: () => string; stop: () => Promise<string> };

async function startServe(): Promise<Serve> {
  const ca = await freshCa();
  await issueWithNewKey(ca, { kind: 'node', nodeId: nodeId('ct110') });
  const { child, port, stderr, stop } = await spawnServe({
    wrap: ['sh', '-c', `ulimit -n ${FD_LIMIT} && exec "$0" "$@"`],
    args: ['--tls-cert', ca.store.issued('ct110', 'crt'), '--tls-key', ca.store.issued('ct110', 'key')],
    env: { RIVET_CA_DIR: ca.store.dir, RIVET_ENV_FILE: '/dev/null', RIVET_BOOTSTRAP_SECRET: SECRET },
  });
  const pid = child.pid!;
  assert.match(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /node/, 'the pid is serve itself (sh and env exec it)');
  assert.match(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'), new RegExp(`Max open files\\s+${FD_LIMIT}\\s`));
  const fx = {
    ca,
    service: { port },
    chain: fs.readFileSync(ca.store.chainFile, 'utf8'),
    work: await tempDir('rivet-limits-'),
  } as unknown as Fixture;
  return {
    ca,
    port,
    pid,
    fx,
    log: stderr,
    stop,
  };
}

type FloodReport = {
  event: string;
  attempts: number;
  handshakes: number;
  refused: number;
  open: number;
  maxOpen: number;
  heldMs?: number[];
  afterStopMs?: number[];
};

/** The attacker process; `next()` resolves with its next report line. */
function flood(port: number, count: number, sources: number, maintain: boolean) {
  const child = execa(
    'sh',
    [
      '-c',
      'ulimit -n 8192 2>/dev/null; exec node "$@"',
      'sh',
      FLOOD,
      String(port),
      String(count),
      String(sources),
      '64',
      maintain ? '1' : '0',
    ],
    { reject: false, stdin: 'pipe' },
  );
  const lines: FloodReport[] = [];
  const waiting: Array<(r: FloodReport) => void> = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const r = JSON.parse(buf.slice(0, i)) as FloodReport;
      buf = buf.slice(i + 1);
      const w = waiting.shift();
      if (w) w(r);
      else lines.push(r);
    }
  });
  const next = (what: string, ms: number) =>
    new Promise<FloodReport>((resolve, reject) => {
      const ready = lines.shift();
      if (ready) return resolve(ready);
      const t = setTimeout(() => reject(new Error(`the flood did not report "${what}" within ${ms} ms`)), ms);
      waiting.push((r) => {
        clearTimeout(t);
        resolve(r);
      });
    });
  return { next, stop: () => child.stdin!.write('stop\n'), kill: () => child.kill('SIGKILL'), done: child };
}

const fdCount = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;
const ms = (t0: number) => Date.now() - t0;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

test('2,000 idle TLS connections from 100 addresses, kept up: /healthz and /enroll answer in < 2 s, descriptors stay under the cap, a TLS reload happens, the idle ones close within 10 s', async () => {
  const s = await startServe();
  const attacker = flood(s.port, 2000, 100, true);
  let maxFds = 0;
  const sampler = setInterval(() => {
    try {
      maxFds = Math.max(maxFds, fdCount(s.pid));
    } catch {
      /* exited */
    }
  }, 20);
  try {
    const cap = Number(/connections: at most (\d+)/.exec(s.log())?.[1]);
    assert.ok(cap > 0 && cap < FD_LIMIT / 2, `serve sized its cap from the descriptor limit: ${cap}`);
    const ready = await attacker.next('ready', 120_000);
    assert.is(ready.attempts >= 2000, true);
    const csrs = await Promise.all([0, 1, 2].map((i) => newCsr(s.fx.work, `ct20${i}.mesh`)));
    const times: string[] = [];
    for (const [i, { csr }] of csrs.entries()) {
      let t0 = Date.now();
      const h = await call(s.fx, 'GET', '/healthz');
      const th = ms(t0);
      assert.is(h.status, 200, h.text);
      t0 = Date.now();
      const e = await call(s.fx, 'POST', '/enroll', { bearer: SECRET, body: { csr } });
      const te = ms(t0);
      assert.is(e.status, 200, e.text);
      assert.ok(
        th < 2000 && te < 2000,
        `probe ${i}: /healthz ${th} ms, /enroll ${te} ms — each must answer in under 2 s`,
      );
      times.push(`${th}/${te}`);
    }
    // A TLS reload while the flood goes on: the CRL is re-signed on disk, serve must pick it up.
    assert.is((await cli(s.ca, ['crl'])).exitCode, 0);
    const t0 = Date.now();
    while (!/TLS material changed on disk — reloaded/.test(s.log()) && ms(t0) < 15_000)
      await new Promise((r) => setTimeout(r, 100));
    assert.match(s.log(), /reloaded \(certificate, chain, CRLs\)/, 'the reload happened under the flood');
    assert.not.match(s.log(), /reload skipped|EMFILE/);
    attacker.stop();
    const during = await attacker.next('done', 20_000);
    clearInterval(sampler);
    assert.ok(maxFds < FD_LIMIT, `serve held at most ${maxFds} descriptors, under its limit ${FD_LIMIT}`);
    assert.ok(maxFds <= cap + 128, `at most ${maxFds} descriptors: the connection cap ${cap} plus the reserve`);
    const held = during.heldMs ?? [];
    assert.ok(held.length > 0, 'some idle connections were open when the attacker stopped');
    assert.ok(
      Math.max(...held) <= 10_000,
      `idle connections closed ${Math.max(...held)} ms after their handshake at the latest — at most 10 s`,
    );
    const summary = await s.stop();
    process.stderr.write(
      `  [limits] cap ${cap} connections (fd limit ${FD_LIMIT}); flood: ${during.attempts} attempts, ${during.handshakes} handshakes, ${during.refused} closed before the handshake, at most ${during.maxOpen} open at once; serve's max descriptors ${maxFds}\n`,
    );
    process.stderr.write(
      `  [limits] probes /healthz/enroll ms: ${times.join(', ')}; ${held.length} idle connections left at stop closed ${Math.min(...held)}–${Math.max(...held)} ms (median ${median(held)}) after their handshake\n`,
    );
    process.stderr.write(`  [limits] serve: ${/connections: \d+ refused.*/.exec(summary)?.[0]}\n`);
  } finally {
    clearInterval(sampler);
    attacker.kill();
    await s.stop();
  }
});

test('2,000 connections from one address: at most 32 open at once, the rest closed before any TLS is spoken', async () => {
  const s = await startServe();
  const attacker = flood(s.port, 2000, 1, false);
  try {
    const r = await attacker.next('ready', 120_000);
    assert.ok(r.maxOpen <= 32, `at most 32 (the per-source cap) open at once, saw ${r.maxOpen}`);
    assert.ok(r.refused >= 2000 - r.handshakes && r.refused > 1000, `refused ${r.refused}`);
    const other = await call(s.fx, 'GET', '/healthz'); // 127.0.0.1 is another source
    assert.is(other.status, 200);
    attacker.stop();
    await attacker.next('done', 20_000);
    const summary = await s.stop();
    const refusedByServe = Number(/connections: (\d+) refused/.exec(summary)?.[1]);
    assert.ok(refusedByServe >= r.refused - r.handshakes, `serve counted ${refusedByServe} refusals`);
    process.stderr.write(
      `  [limits] one source: ${r.attempts} attempts, ${r.handshakes} handshakes, ${r.refused} refused before TLS, at most ${r.maxOpen} open at once\n`,
    );
  } finally {
    attacker.kill();
    await s.stop();
  }
});

test('timeouts: a handshake then silence closes within 10 s, a request trickled a byte at a time gets 408, a kept-alive connection closes when idle', async () => {
  const s = await startServe();
  try {
    const opts = { host: '127.0.0.1', port: s.port, ca: s.fx.chain, servername: 'ct110.mesh' };
    const silent = new Promise<number>((resolve, reject) => {
      const c = tls.connect({ ...opts, localAddress: '127.0.2.1' } as tls.ConnectionOptions);
      let t0 = 0;
      c.once('secureConnect', () => {
        t0 = Date.now();
      });
      c.on('error', () => {});
      c.once('close', () => (t0 ? resolve(ms(t0)) : reject(new Error('no handshake'))));
    });
    const trickle = new Promise<{ ms: number; reply: string }>((resolve) => {
      const c = tls.connect({ ...opts, localAddress: '127.0.2.2' } as tls.ConnectionOptions);
      const text = 'GET /healthz HTTP/1.1\r\nHost: ct110.mesh\r\nX-Slow: ';
      let i = 0;
      let t0 = 0;
      let reply = '';
      const timer = setInterval(() => {
        if (i < text.length) c.write(text[i++]!);
        else c.write('a');
      }, 2_000);
      c.once('secureConnect', () => {
        t0 = Date.now();
        c.write(text[i++]!);
      });
      c.on('data', (d: Buffer) => {
        reply += d;
      });
      c.on('error', () => {});
      c.once('close', () => {
        clearInterval(timer);
        resolve({ ms: ms(t0), reply });
      });
    });
    const keptAlive = new Promise<number>((resolve, reject) => {
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
      const req = https.request({ ...opts, path: '/healthz', agent, localAddress: '127.0.2.3' }, (res) => {
        res.resume();
        res.once('end', () => {
          const t0 = Date.now();
          req.socket!.once('close', () => {
            agent.destroy();
            resolve(ms(t0));
          });
        });
      });
      req.on('error', reject);
      req.end();
    });
    const [idle, slow, keep] = await Promise.all([silent, trickle, keptAlive]);
    assert.ok(idle <= 10_000, `a handshake followed by nothing was closed after ${idle} ms — at most 10 s`);
    assert.match(slow.reply, /^HTTP\/1\.1 408/, 'headers that never finish get 408');
    assert.ok(keep > 0);
    process.stderr.write(
      `  [limits] idle after handshake closed at ${idle} ms; trickled headers got 408 at ${slow.ms} ms; kept-alive idle closed at ${keep} ms\n`,
    );
  } finally {
    await s.stop();
  }
});

test.run();
