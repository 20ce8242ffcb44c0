// The service under load and under attack: 100 enrollments at once while the operator's CLI
// issues agents in a loop on the same CA (one lock for both), and a brute-forcing address that is
// throttled without locking anyone else out.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { enrollFixture, newCsr, call, auditLines, SECRET } from './helpers/enroll.ts';
import { CLI } from './helpers/ca.ts';
import { parseCertPem } from '../lib/x509/cert.ts';
import { readDb } from '../lib/ca/database.ts';
import { csrForKey } from '../lib/sign/csr.ts';
import { leafProfile } from '../lib/sign/profile.ts';
import { nodeId } from '../lib/core/identity.ts';

test('100 concurrent enrollments while the CLI issues agents: all answered, all in the DB, distinct serials, no 5xx', async () => {
  // 100 clients from the one test address at once: above the per-source connection cap (32, one
  // node per address in a mesh), which test/serve-limits.test.ts covers.
  const fx = await enrollFixture({ maxConnectionsPerSource: 128 });
  try {
    const key = (await newCsr(fx.work, 'ct999.mesh')).key; // one key: CSRs are cheap, key generation is not the point
    const names = Array.from({ length: 100 }, (_, i) => `n${String(i).padStart(3, '0')}`);
    // Half the CSRs as provision-ct makes them (the profile's SAN: signed in groups by one openssl
    // run), half bare ones as curl users make them (signed one by one): both paths under load.
    const csrs: string[] = [];
    for (let i = 0; i < names.length; i += 10) {
      csrs.push(
        ...(await Promise.all(
          names
            .slice(i, i + 10)
            .map(async (n, k) =>
              (i + k) % 2
                ? (await newCsr(fx.work, `${n}.mesh`, key)).csr
                : await csrForKey(key, leafProfile({ kind: 'node', nodeId: nodeId(n) }, fx.ca.domain)),
            ),
        )),
      );
    }
    // The operator's loop: issue-agent until told to stop (and at least 3 times), as a child process.
    const stop = path.join(fx.work, 'stop');
    const loop = execa(
      'bash',
      [
        '-c',
        `i=0; while [ ! -e "$STOP" ] || [ $i -lt 3 ]; do i=$((i+1)); "$CLI" issue-agent "a$i@ct110" >/dev/null || exit 1; done; echo $i`,
      ],
      {
        env: { RIVET_CA_DIR: fx.ca.store.dir, RIVET_ENV_FILE: '/dev/null', STOP: stop, CLI },
        reject: false,
      },
    );
    const started = Date.now();
    const replies = await Promise.all(
      csrs.map((csr) => call(fx, 'POST', '/enroll', { bearer: SECRET, body: { csr } })),
    );
    const elapsed = Date.now() - started;
    fs.writeFileSync(stop, '');
    const cliRun = await loop;
    assert.is(cliRun.exitCode, 0, String(cliRun.stderr));
    const agents = Number(String(cliRun.stdout).trim());

    const statuses = replies.map((r) => r.status);
    assert.is(statuses.filter((s) => s >= 500).length, 0, 'no 5xx');
    assert.equal(
      statuses.filter((s) => s !== 200),
      [],
      replies
        .filter((r) => r.status !== 200)
        .map((r) => r.text)
        .join('\n'),
    );
    const certs = replies.map((r) => parseCertPem(r.json.cert));
    for (const [i, c] of certs.entries()) {
      const p = leafProfile({ kind: 'node', nodeId: nodeId(names[i]!) }, fx.ca.domain);
      assert.equal(
        [c.subjectCNs, c.dns, c.uris, c.ca],
        [[p.cn], p.dns, p.uris, false],
        `${names[i]}: what the profile says, whichever path signed it`,
      );
    }
    const serials = certs.map((c) => c.serial);
    assert.is(new Set(serials).size, 100, 'distinct serials');
    assert.equal(
      replies.map((r) => r.json.cn).sort(),
      names.map((n) => `${n}.mesh`),
    );
    const rows = await readDb(path.join(fx.ca.store.dir, 'intermediate'));
    const inDb = new Set(rows.map((r) => r.serial));
    for (const s of serials) assert.ok(inDb.has(s), `serial ${s} is in the database`);
    assert.is(rows.filter((r) => /^a\d+@ct110$/.test(r.cn)).length, agents, 'every CLI agent is in the database too');
    assert.is(rows.length, 1 + 100 + agents);
    assert.is(new Set(rows.map((r) => r.serial)).size, rows.length);
    process.stderr.write(
      `  [load] 100 enrollments in ${elapsed} ms, ${agents} CLI agents alongside, ${statuses.filter((s) => s >= 500).length} 5xx\n`,
    );
  } finally {
    await fx.close();
  }
});

test('twenty wrong-secret attempts from one address are throttled (429) while another address still enrolls', async () => {
  const fx = await enrollFixture({ maxFailures: 10, failureWindowMs: 60_000 });
  try {
    const { csr } = await newCsr(fx.work, 'ct150.mesh');
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++)
      statuses.push(
        (await call(fx, 'POST', '/enroll', { bearer: `guess-${i}`, body: { csr }, localAddress: '127.0.0.1' })).status,
      );
    assert.equal(statuses.slice(0, 10), Array(10).fill(401));
    assert.equal(statuses.slice(10), Array(10).fill(429));
    const blocked = await call(fx, 'POST', '/enroll', { bearer: SECRET, body: { csr }, localAddress: '127.0.0.1' });
    assert.is(blocked.status, 429, 'even the right secret waits out the window from that address');
    assert.is(blocked.json.error.code, 'throttled');
    const other = await call(fx, 'POST', '/enroll', { bearer: SECRET, body: { csr }, localAddress: '127.0.0.2' });
    assert.is(other.status, 200, other.text);
    assert.is(other.json.cn, 'ct150.mesh');
    const audit = await auditLines(fx.ca);
    assert.is(audit.filter((e) => e.reason === 'bad_secret' && e.source === '127.0.0.1').length, 10);
    assert.is(audit.filter((e) => e.event === 'throttle' && e.source === '127.0.0.1').length, 1);
    assert.ok(audit.some((e) => e.event === 'enroll' && e.result === 'ok' && e.source === '127.0.0.2'));
    assert.not.ok(fs.readFileSync(fx.ca.store.auditLog, 'utf8').includes(SECRET));
  } finally {
    await fx.close();
  }
});

test.run();
