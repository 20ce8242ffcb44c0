// The renewal window and revocation, with back-dated certificates: a node whose cert is 80 days
// old (10 left) renews, one 10 days old (80 left) does nothing, a revoked one cannot renew. The
// back-dated certs are signed by the operator CLI for the node's own key (`sign --not-before`)
// and installed as node.crt, as if the node had enrolled that long ago.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { startServed, mustOk, SECRET, type Served } from './helpers/provision.ts';
import { snapshot } from './helpers/ca.ts';
import { parseCertPem } from '../lib/x509/cert.ts';
import { DAY_MS } from '../lib/core/duration.ts';

let s: Served;
test.before(async () => {
  s = await startServed();
});
test.after(async () => {
  await s.close();
});

/**
 * Enrolls `node` with provision-ct, then replaces node.crt by one for the same key issued
 * `ageDays` ago. The certificate it got at enrollment is revoked (superseded) and the CRL fetched,
 * as if the node had held only the old one: the service would otherwise hand that newer one back.
 */
async function enrolledAged(node: string, ageDays: number, agents = ['opus']): Promise<string> {
  const dir = path.join(s.home, node);
  mustOk(
    await s.provision(
      dir,
      [
        'enroll',
        '--node-id',
        node,
        ...s.datahubArgs,
        '--ca-fingerprint',
        s.fingerprint,
        ...agents.flatMap((a) => ['--agent', a]),
      ],
      { RIVET_BOOTSTRAP_SECRET: SECRET },
    ),
    `enroll ${node}`,
  );
  const enrolledSerial = parseCertPem(fs.readFileSync(path.join(dir, 'node.crt'), 'utf8')).serial;
  const csr = path.join(s.home, `${node}.csr`);
  await execa(
    'openssl',
    ['req', '-new', '-key', path.join(dir, 'node.key'), '-subj', `/CN=${node}.mesh`, '-out', csr],
    { env: { OPENSSL_CONF: '/dev/null' } },
  );
  const notBefore = new Date(Date.now() - ageDays * DAY_MS).toISOString().replace(/\.\d+Z$/, 'Z');
  mustOk(
    await s.rivet([
      'sign',
      csr,
      '--as',
      node,
      '--days',
      '90',
      '--not-before',
      notBefore,
      '--out',
      path.join(dir, 'node.crt'),
    ]),
    'sign back-dated',
  );
  const leaf = parseCertPem(fs.readFileSync(path.join(dir, 'node.crt'), 'utf8'));
  assert.ok(
    Math.abs(leaf.notBefore.getTime() - (Date.now() - ageDays * DAY_MS)) < 60_000,
    `node.crt of ${node} starts ${ageDays} days ago`,
  );
  mustOk(
    await s.rivet(['revoke', node, '--serial', enrolledSerial, '--reason', 'superseded', '--no-push']),
    'retire the enrollment cert',
  );
  mustOk(await s.provision(dir, ['fetch-crl']), 'fetch-crl');
  return dir;
}

test('a node cert 80 days old (10 left) renews: same key, new cert for 90 days, agents re-issued', async () => {
  const dir = await enrolledAged('ct140', 80);
  const key = fs.readFileSync(path.join(dir, 'node.key'));
  const old = parseCertPem(fs.readFileSync(path.join(dir, 'node.crt'), 'utf8'));
  const agentSerial = parseCertPem(fs.readFileSync(path.join(dir, 'agents/opus.crt'), 'utf8')).serial;
  const r = mustOk(await s.provision(dir, ['renew']), 'renew');
  assert.match(
    r.stdout,
    new RegExp(
      `renewed  ct140\\.mesh: serial [0-9A-F]+, until .*\\(was serial ${old.serial}, (9|10) days left; key unchanged\\)`,
    ),
  );
  assert.match(r.stdout, /renewed {2}opus@ct140: .*with node ct140/);
  const now = parseCertPem(fs.readFileSync(path.join(dir, 'node.crt'), 'utf8'));
  assert.is.not(now.serial, old.serial);
  assert.ok(now.notAfter.getTime() - Date.now() > 88 * DAY_MS, 'a fresh 90-day certificate');
  assert.ok(fs.readFileSync(path.join(dir, 'node.key')).equals(key), 'node.key unchanged');
  assert.is.not(parseCertPem(fs.readFileSync(path.join(dir, 'agents/opus.crt'), 'utf8')).serial, agentSerial);
  const again = mustOk(await s.provision(dir, ['renew']), 'renew again');
  assert.match(again.stdout, /not due {2}ct140\.mesh/, 'once renewed it is no longer due');
});

test('a node cert 10 days old (80 left) does nothing: every file byte-identical', async () => {
  const dir = await enrolledAged('ct141', 10);
  const before = snapshot(dir);
  const r = mustOk(await s.provision(dir, ['renew']), 'renew');
  assert.match(r.stdout, /not due {2}ct141\.mesh: serial [0-9A-F]+, until \S+, (79|80) days left/);
  assert.match(r.stdout, /not due {2}opus@ct141/);
  assert.not.match(r.stdout, /renewed/);
  assert.equal(snapshot(dir), before);
  const st = JSON.parse(mustOk(await s.provision(dir, ['status', '--json', '--within', '90d']), 'status').stdout);
  assert.is(st.certs[0].state, 'due', 'status --within 90d calls it due');
});

test('a revoked node cannot renew, even when due; its files stay; status says revoked', async () => {
  const dir = await enrolledAged('ct142', 80);
  mustOk(await s.rivet(['revoke', 'ct142', '--no-push']), 'revoke');
  const crt = fs.readFileSync(path.join(dir, 'node.crt'));
  const r = await s.provision(dir, ['renew']);
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, /crl\.pem: updated/, 'the CRL is pulled first');
  assert.match(
    r.stdout,
    /FAILED {3}ct142\.mesh: \/renew refused \(HTTP 401 \w+\): .*revoked.*only a new enrollment \(provision-ct enroll --force/,
  );
  assert.ok(fs.readFileSync(path.join(dir, 'node.crt')).equals(crt), 'node.crt unchanged');
  const st = await s.provision(dir, ['status']);
  assert.is(st.exitCode, 1);
  assert.match(st.stdout, /cert {7}ct142\.mesh: revoked/);
  assert.match(st.stdout, /attention {2}ct142\.mesh: revoked — re-enroll with --force/);
  const audit = fs
    .readFileSync(s.ca.store.auditLog, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"event":"renew"') && l.includes('ct142'));
  assert.ok(
    audit.some((l) => l.includes('"result":"refused"')),
    'the service audited the refusal',
  );
  assert.not.ok(audit.some((l) => l.includes('"result":"ok"')));
});

test('a revoked agent stays cut off: renew reports it skipped (exit 0) and re-issues the others; a stray file in agents/ is ignored', async () => {
  const node = 'ct143';
  const dir = await enrolledAged(node, 70, ['opus', 'grok']); // inside its renewal window
  mustOk(await s.rivet(['revoke', `opus@${node}`, '--no-push']), 'revoke opus');
  fs.writeFileSync(path.join(dir, 'agents', 'Backup Copy.crt'), 'not a cert');
  const r = mustOk(await s.provision(dir, ['renew', '--within', '100d']), 'renew');
  assert.match(r.stdout, new RegExp(`skipped  opus@${node}: serial [0-9A-F]+ \\(revoked`));
  assert.match(r.stdout, new RegExp(`renewed  grok@${node}: .*with node ${node}`));
  assert.match(r.stdout, new RegExp(`renewed  ${node}\\.mesh`));
});

test.run();
