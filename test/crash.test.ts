// Crash safety (DESIGN §8): SIGKILL `issue-node`, `issue --roster`, `renew`, `revoke`, `crl` and the
// enrollment service mid-/enroll at random moments, many times, on one CA. After every kill the
// next command runs on the same CA (it must succeed: recovery works and the lock is not stuck), then
// the invariants are checked. A poller watches key modes the whole time. The kill count is
// RIVET_CRASH_KILLS (default 40; `make test-all` and CI run 220).
import { spawnServe } from './helpers/serve.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import { execa, type ResultPromise } from 'execa';
import { CLI, cli, tempDir } from './helpers/ca.ts';
import { readDb } from '../lib/ca/database.ts';
import { parseCrlBundle } from '../lib/x509/crl.ts';
import { forgeCsrDer, toPem } from './hostile/forge.ts';

const KILLS = Number(process.env.RIVET_CRASH_KILLS ?? 40);
const SECRET = 'crash test secret';
let home: string;
let caDir: string;
const env = () => ({
  RIVET_CA_DIR: caDir,
  RIVET_ENV_FILE: '/dev/null',
  RIVET_BOOTSTRAP_SECRET: SECRET,
  RIVET_LOCK_TIMEOUT_MS: '20000',
});

const walk = (dir: string): string[] =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });

/** Every violation seen at any instant by the key-mode poller. */
const modeViolations: string[] = [];
function watchKeyModes(): () => void {
  const timer = setInterval(() => {
    let files: string[];
    try {
      files = walk(caDir);
    } catch {
      return;
    }
    for (const f of files) {
      if (!/\.key$|key[^/]*$/.test(path.basename(f)) || /\.lock/.test(f)) continue;
      try {
        const mode = fs.statSync(f).mode & 0o777;
        if (mode & 0o077) modeViolations.push(`${path.relative(caDir, f)} mode ${mode.toString(8)}`);
      } catch {
        /* renamed or removed between readdir and stat */
      }
    }
  }, 3);
  return () => clearInterval(timer);
}

/** The invariants after a successful run following a kill. Returns the failed ones. */
async function invariants(): Promise<string[]> {
  const bad: string[] = [];
  const files = walk(caDir);
  const rel = (f: string) => path.relative(caDir, f);
  const left = files.filter(
    (f) => path.basename(f).includes('.rivet-tmp-') || /index\.txt\.new$|serial\.new$|crlnumber\.new$/.test(f),
  );
  if (left.length) bad.push(`left behind after a successful run: ${left.map(rel).join(', ')}`);
  if (fs.existsSync(path.join(caDir, '.lock'))) bad.push('lock still held after the run finished');
  if (fs.existsSync(path.join(caDir, '.crl-pending'))) bad.push('.crl-pending left after a successful run');
  const intDir = path.join(caDir, 'intermediate');
  let db: Awaited<ReturnType<typeof readDb>> = [];
  try {
    db = await readDb(intDir);
  } catch (err) {
    bad.push(`index.txt does not parse: ${(err as Error).message}`);
  }
  const serialText = fs.readFileSync(path.join(intDir, 'serial'), 'utf8').trim();
  if (!/^[0-9A-F]+$/i.test(serialText) && serialText !== '')
    bad.push(`serial does not parse: ${JSON.stringify(serialText)}`);
  const known = new Set<string>(db.map((e) => e.serial));
  if (known.size !== db.length) bad.push('duplicate serials in index.txt');
  for (const f of fs.readdirSync(path.join(intDir, 'newcerts'))) {
    if (!known.has(f.replace(/\.pem$/, '').toUpperCase())) bad.push(`newcerts/${f} is not in the database`);
  }
  for (const f of fs.readdirSync(path.join(caDir, 'issued')).filter((n) => n.endsWith('.crt'))) {
    try {
      const leaf = new X509Certificate(fs.readFileSync(path.join(caDir, 'issued', f)));
      if (!known.has(leaf.serialNumber.toUpperCase()))
        bad.push(`issued/${f} serial ${leaf.serialNumber} is not in the database`);
      const key = path.join(caDir, 'issued', f.replace(/\.crt$/, '.key'));
      if (
        fs.existsSync(key) &&
        !leaf.checkPrivateKey((await import('node:crypto')).createPrivateKey(fs.readFileSync(key)))
      )
        bad.push(`issued/${f} does not match its key`);
    } catch (err) {
      bad.push(`issued/${f} does not parse: ${(err as Error).message}`);
    }
  }
  try {
    const crls = parseCrlBundle(fs.readFileSync(path.join(caDir, 'crl.pem'), 'utf8'));
    const intCn = /CN=([^\n]*)/.exec(new X509Certificate(fs.readFileSync(path.join(intDir, 'int.crt'))).subject)![1]!;
    const crl = crls.find((c) => c.issuerCNs[0] === intCn);
    if (!crl) bad.push(`crl.pem holds no CRL of ${intCn}`);
    else {
      const inCrl = crl.revoked.map((r) => r.serial).sort();
      const inDb = db
        .filter((e) => e.status === 'R')
        .map((e) => e.serial)
        .sort();
      if (JSON.stringify(inCrl) !== JSON.stringify(inDb))
        bad.push(`CRL revoked set [${inCrl.join(',')}] ≠ database [${inDb.join(',')}]`);
    }
    const own = fs.readFileSync(path.join(intDir, 'crl.pem'), 'utf8');
    if (!parseCrlBundle(own).length) bad.push('intermediate/crl.pem holds no CRL');
  } catch (err) {
    bad.push(`crl.pem does not parse: ${(err as Error).message}`);
  }
  return bad;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a command in its own process group; kills the whole group after `delay` ms. */
async function killDuring(args: string[], delay: number): Promise<boolean> {
  const child = execa(CLI, args, {
    env: env(),
    reject: false,
    detached: true,
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'ignore',
  });
  const done = child.then(() => true);
  const finished = await Promise.race([done, sleep(delay).then(() => false)]);
  if (finished) return false;
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    /* exited in between */
  }
  const r = await child;
  return r.signal === 'SIGKILL';
}

async function startServe(): Promise<{ child: ResultPromise; port: number }> {
  return spawnServe({
    args: ['--tls-cert', path.join(caDir, 'issued', 'ct110.crt'), '--tls-key', path.join(caDir, 'issued', 'ct110.key')],
    env: env(),
    execa: { detached: true, stdin: 'ignore' }, // a process group of its own: the test SIGKILLs it
    timeoutMs: 20_000,
  });
}

function enroll(port: number, node: string, csr: string, chain: string): Promise<void> {
  return new Promise((resolve) => {
    const body = JSON.stringify({ csr });
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        servername: 'ct110.mesh',
        ca: chain,
        method: 'POST',
        path: '/enroll',
        agent: false,
        headers: {
          authorization: `Bearer ${SECRET}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on('end', resolve);
        res.on('error', () => resolve());
      },
    );
    req.on('error', () => resolve());
    req.setTimeout(10_000, () => {
      req.destroy();
      resolve();
    });
    req.end(body);
  });
}

test(`SIGKILL at random moments, ${KILLS} times: every run after a kill succeeds and every invariant holds`, async () => {
  home = await tempDir('rivet-crash-');
  caDir = path.join(home, 'ca');
  for (const args of [
    ['init'],
    ['issue-intermediate'],
    ['issue-node', 'ct110'],
    ['issue-node', 'ct111'],
    ['issue-agent', 'opus@ct111'],
    ['issue-node', 'ct112'],
  ]) {
    const r = await cli(caDir, args, { env: env() });
    assert.is(r.exitCode, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  const chain = fs.readFileSync(path.join(caDir, 'intermediate', 'chain.pem'), 'utf8');
  const stopWatch = watchKeyModes();
  const kills: Record<string, number> = {};
  const violations: string[] = [];
  let n = 0;
  let attempts = 0;
  const revocable: string[] = [];
  const started = Date.now();
  try {
    while (Object.values(kills).reduce((a, b) => a + b, 0) < KILLS && attempts < KILLS * 3) {
      attempts++;
      const op = ['issue-node', 'roster', 'renew', 'revoke', 'crl', 'enroll'][attempts % 6]!;
      let killed: boolean;
      if (op === 'enroll') {
        const serve = await startServe();
        const node = `e${n++}`;
        const csr = toPem(await forgeCsrDer({ cns: [`${node}.mesh`] }));
        const delay = Math.random() * 300;
        const pending = enroll(serve.port, node, csr, chain);
        await sleep(delay);
        try {
          process.kill(-serve.child.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
        killed = (await serve.child).signal === 'SIGKILL';
        await pending;
      } else {
        const args =
          op === 'issue-node'
            ? ['issue-node', `n${n++}`]
            : op === 'roster'
              ? [
                  'issue',
                  '--roster',
                  await (async () => {
                    const f = path.join(home, `roster-${n}`);
                    await fsp.writeFile(f, Array.from({ length: 4 }, () => `r${n++}`).join('\n'));
                    return f;
                  })(),
                ]
              : op === 'renew'
                ? ['renew', 'ct111', 'ct112', '--within', '400d']
                : op === 'revoke'
                  ? ['revoke', revocable.shift() ?? 'ct112', '--no-push']
                  : ['crl'];
        if (op === 'issue-node') revocable.push(args[1]!);
        // The CLI needs ~0.3 s to start; the window reaches well into the work itself.
        killed = await killDuring(args, Math.random() * 700);
      }
      if (killed) kills[op] = (kills[op] ?? 0) + 1;
      // The next command on the same CA: must succeed (recovery, lock broken), then the invariants.
      const next = await cli(caDir, attempts % 2 ? ['crl'] : ['issue-node', `a${n++}`], { env: env() });
      if (next.exitCode !== 0)
        violations.push(`after killing ${op}: next command failed (${next.exitCode}): ${next.stderr.trim()}`);
      for (const v of await invariants())
        violations.push(`after ${killed ? 'killing' : 'running'} ${op} (#${attempts}): ${v}`);
      if (violations.length > 20) break;
    }
  } finally {
    stopWatch();
  }
  const total = Object.values(kills).reduce((a, b) => a + b, 0);
  process.stdout.write(
    `\ncrash: ${total} kills in ${attempts} attempts, ${Math.round((Date.now() - started) / 1000)} s — ${JSON.stringify(kills)}; invariant violations ${violations.length}, key-mode violations ${modeViolations.length}\n`,
  );
  assert.equal(violations, []);
  assert.equal([...new Set(modeViolations)], [], 'no key file wider than 0600 at any instant');
  assert.ok(total >= KILLS, `${total} kills, wanted ${KILLS}`);
});

test.run();
