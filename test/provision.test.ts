// provision-ct end to end: the real script against the real `rivet-ca serve` on loopback — enroll
// (secret from the environment, agents, timer), idempotent re-run, renew (same key, new cert),
// fetch-crl, status, legacy MESH_SECRET, one-time tokens, resuming an enrollment whose reply was
// lost, and --force only after the operator revoked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { startServed, mustOk, filesUnder, SECRET, type Served } from './helpers/provision.ts';
import { execa } from 'execa';
import { snapshot, ROOT } from './helpers/ca.ts';
import { parseCertPem, parseCertsPem, publicKeyDer } from '../lib/x509/cert.ts';
import { publicKeyOfPrivatePem } from '../lib/core/keys.ts';
import { parseCrlBundle } from '../lib/x509/crl.ts';

let s: Served;
test.before(async () => {
  s = await startServed();
});
test.after(async () => {
  await s.close();
});

const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);
const spki = (keyFile: string) => publicKeyDer(publicKeyOfPrivatePem(fs.readFileSync(keyFile, 'utf8')));
const enrollArgs = (node: string, extra: string[] = []) => [
  'enroll',
  '--node-id',
  node,
  ...s.datahubArgs,
  '--ca-fingerprint',
  s.fingerprint,
  ...extra,
];

test('enroll: key made here, certs installed 0600/0644 in 0700 dirs, agent minted, settings and timer written', async () => {
  const dir = path.join(s.home, 'ct111');
  const timerRoot = path.join(s.home, 'timer-root');
  const r = mustOk(
    await s.provision(
      dir,
      enrollArgs('ct111', [
        '--san',
        'DNS:api.ct111.mesh',
        '--agent',
        'opus',
        '--install-timer',
        'systemd',
        '--timer-root',
        timerRoot,
      ]),
      { RIVET_BOOTSTRAP_SECRET: SECRET },
    ),
    'enroll',
  );
  assert.match(r.stdout, /pinned root Rivet Root CA sha256:/);
  assert.match(r.stdout, /ct111\.mesh enrolled \(serial [0-9A-F]+/);
  assert.match(r.stdout, /agent opus@ct111: serial/);
  assert.not.match(`${r.stdout}${r.stderr}${s.serveLog()}`, SECRET, 'the secret is never printed');
  assert.equal(filesUnder(dir), [
    'agents/opus.crt',
    'agents/opus.key',
    'crl-state.json',
    'crl.pem',
    'node.crt',
    'node.json',
    'node.key',
    'rivet-ca.crt',
  ]);
  assert.is(mode(dir), '700');
  assert.is(mode(path.join(dir, 'agents')), '700');
  assert.is(mode(path.join(dir, 'node.key')), '600');
  assert.is(mode(path.join(dir, 'agents/opus.key')), '600');
  assert.is(mode(path.join(dir, 'node.crt')), '644');
  const [leaf, inter] = parseCertsPem(fs.readFileSync(path.join(dir, 'node.crt'), 'utf8'));
  assert.equal(leaf!.subjectCNs, ['ct111.mesh']);
  assert.ok(leaf!.dns.includes('api.ct111.mesh'), 'the requested SAN is in the cert');
  assert.equal(inter!.subjectCNs, ['Rivet Intermediate CA 1'], 'node.crt is leaf + intermediate');
  assert.ok(publicKeyDer(leaf!.x509).equals(spki(path.join(dir, 'node.key'))), 'node.crt certifies the local key');
  assert.equal(parseCertPem(fs.readFileSync(path.join(dir, 'agents/opus.crt'), 'utf8')).subjectCNs, ['opus@ct111']);
  assert.is(fs.readFileSync(path.join(dir, 'rivet-ca.crt'), 'utf8'), fs.readFileSync(s.ca.store.chainFile, 'utf8'));
  assert.is(parseCrlBundle(fs.readFileSync(path.join(dir, 'crl.pem'), 'utf8')).length, 2);
  const settings = JSON.parse(fs.readFileSync(path.join(dir, 'node.json'), 'utf8'));
  assert.equal(settings, {
    nodeId: 'ct111',
    domain: 'mesh',
    datahub: s.url,
    caFingerprint: s.fingerprint,
    agents: ['opus'],
    sans: ['DNS:api.ct111.mesh'],
    servername: 'ct110.mesh',
    caHost: 'ct110',
  });
  assert.match(r.stdout, /CA host ct110: the datahub answered with its node certificate; only it may push CRLs here/);
  assert.not.match(JSON.stringify(settings), SECRET);
  const unit = fs.readFileSync(path.join(timerRoot, 'etc/systemd/system/rivet-renew.service'), 'utf8');
  assert.match(unit, `Environment=RIVET_NODE_DIR=${dir}\n`);
  assert.match(unit, / -C \/\S+ renew\n/);
  const timer = fs.readFileSync(path.join(timerRoot, 'etc/systemd/system/rivet-renew.timer'), 'utf8');
  assert.match(timer, /OnCalendar=daily/);
  assert.match(timer, /RandomizedDelaySec=/);
  assert.ok(fs.existsSync(path.join(timerRoot, 'etc/systemd/system/rivet-fetch-crl.timer')));
  assert.match(
    fs.readFileSync(s.ca.store.auditLog, 'utf8'),
    /"event":"enroll","result":"ok","cn":"ct111.mesh".*"detail":"bootstrap secret"/,
  );
});

test('enroll again on an enrolled node changes nothing and says so (no secret needed)', async () => {
  const dir = path.join(s.home, 'ct111');
  const before = snapshot(dir);
  const r = mustOk(
    await s.provision(
      dir,
      enrollArgs('ct111', [
        '--agent',
        'opus',
        '--install-timer',
        'systemd',
        '--timer-root',
        path.join(s.home, 'timer-root'),
      ]),
    ),
    're-enroll',
  );
  assert.match(r.stdout, /ct111\.mesh is already enrolled .* nothing changed/);
  assert.match(r.stdout, /timer \(systemd\): already installed — nothing changed/);
  assert.equal(snapshot(dir), before);
  const bare = mustOk(await s.provision(dir, ['enroll']), 'enroll with remembered settings');
  assert.match(bare.stdout, /already enrolled/);
  assert.equal(snapshot(dir), before);
});

test('renew: not due does nothing; due renews over mTLS with the same key, agents piggyback', async () => {
  const dir = path.join(s.home, 'ct111');
  const before = snapshot(dir);
  const idle = mustOk(await s.provision(dir, ['renew']), 'renew (not due)');
  assert.match(idle.stdout, /not due {2}ct111\.mesh/);
  assert.equal(snapshot(dir), before);
  const key = fs.readFileSync(path.join(dir, 'node.key'));
  const agentKey = fs.readFileSync(path.join(dir, 'agents/opus.key'));
  // Renewal opens in the last third of a certificate's life: node.crt becomes one for the same key
  // issued 70 days ago (the service hands back the newer one it holds for this key).
  const csr = path.join(s.home, 'ct111-old.csr');
  await execa('openssl', ['req', '-new', '-key', path.join(dir, 'node.key'), '-subj', '/CN=ct111.mesh', '-out', csr], {
    env: { OPENSSL_CONF: '/dev/null' },
  });
  const notBefore = new Date(Date.now() - 70 * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z');
  mustOk(
    await s.rivet([
      'sign',
      csr,
      '--as',
      'ct111',
      '--san',
      'DNS:api.ct111.mesh',
      '--not-before',
      notBefore,
      '--out',
      path.join(dir, 'node.crt'),
    ]),
    'sign back-dated',
  );
  const oldSerial = parseCertPem(fs.readFileSync(path.join(dir, 'node.crt'), 'utf8')).serial;
  const r = mustOk(await s.provision(dir, ['renew', '--within', '90d']), 'renew --within 90d');
  assert.match(r.stdout, /renewed {2}ct111\.mesh: serial [0-9A-F]+.*key unchanged/);
  assert.match(r.stdout, /renewed {2}opus@ct111: .*with node ct111/);
  assert.ok(fs.readFileSync(path.join(dir, 'node.key')).equals(key), 'node.key is byte-identical');
  assert.ok(fs.readFileSync(path.join(dir, 'agents/opus.key')).equals(agentKey), 'agent key is byte-identical');
  const leaf = parseCertPem(fs.readFileSync(path.join(dir, 'node.crt'), 'utf8'));
  assert.is.not(leaf.serial, oldSerial, 'the certificate is new');
  assert.ok(publicKeyDer(leaf.x509).equals(spki(path.join(dir, 'node.key'))));
  assert.is(leaf.dns.includes('api.ct111.mesh'), true, 'renewal keeps the SANs');
  assert.not.match(
    fs
      .readFileSync(s.ca.store.auditLog, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"event":"renew"'))
      .join('\n'),
    'bootstrap secret',
  );
});

test('fetch-crl installs a newer CRL after a revocation, then reports unchanged; status shows it', async () => {
  const dir = path.join(s.home, 'ct111');
  mustOk(await s.rivet(['issue-agent', 'tmp@ct111']), 'issue-agent');
  mustOk(await s.rivet(['revoke', 'tmp@ct111', '--no-push']), 'revoke');
  const r = mustOk(await s.provision(dir, ['fetch-crl']), 'fetch-crl');
  assert.match(r.stdout, /crl\.pem installed from/);
  assert.match(r.stdout, /Rivet Intermediate CA 1: crlNumber \d+, 1 revoked/);
  assert.is(fs.readFileSync(path.join(dir, 'crl.pem'), 'utf8'), fs.readFileSync(s.ca.store.crlBundle, 'utf8'));
  const again = mustOk(await s.provision(dir, ['fetch-crl']), 'fetch-crl again');
  assert.match(again.stdout, /crl\.pem unchanged/);
  const st = mustOk(await s.provision(dir, ['status', '--json']), 'status');
  const json = JSON.parse(st.stdout);
  assert.is(json.enrolled, true);
  assert.is(json.rootFingerprint, s.fingerprint);
  assert.equal(
    json.certs.map((c: { cn: string; state: string }) => `${c.cn} ${c.state}`),
    ['ct111.mesh ok', 'opus@ct111 ok'],
  );
  assert.ok(json.certs[0].daysLeft >= 88);
  assert.equal(
    json.crl.map((c: { revoked: number }) => c.revoked),
    [1, 0],
  );
  assert.ok(json.crl[0].ageHours < 1);
  assert.equal(json.problems, []);
  const text = mustOk(await s.provision(dir, ['status']), 'status text');
  assert.match(text.stdout, /cert {7}ct111\.mesh: ok, serial [0-9A-F]+, until \d{4}-\d\d-\d\d \(\d+ days left\)/);
  assert.match(text.stdout, /attention {2}none/);
});

test('no secret: enroll stops with a usage error before any key or request', async () => {
  const dir = path.join(s.home, 'ct112');
  const r = await s.provision(dir, enrollArgs('ct112'));
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /no bootstrap secret — set RIVET_BOOTSTRAP_SECRET/);
  assert.equal(filesUnder(dir), []);
  const argv = await s.provision(dir, [...enrollArgs('ct112'), '--secret', SECRET]);
  assert.is(argv.exitCode, 2, 'there is no option to pass the secret in argv');
  assert.not.match(argv.stderr, SECRET);
});

test('legacy MESH_SECRET works with a deprecation warning; a one-time token file works', async () => {
  const legacy = await s.provision(path.join(s.home, 'ct113'), enrollArgs('ct113'), { MESH_SECRET: SECRET });
  mustOk(legacy, 'enroll with MESH_SECRET');
  assert.match(legacy.stderr, /warning: MESH_SECRET is deprecated — rename it to RIVET_BOOTSTRAP_SECRET/);
  const token = mustOk(await s.rivet(['token', 'ct114']), 'token').stdout.trim();
  const tokenFile = path.join(s.home, 'ct114.token');
  fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const r = mustOk(
    await s.provision(path.join(s.home, 'ct114'), enrollArgs('ct114', ['--token-file', tokenFile])),
    'enroll with token',
  );
  assert.match(r.stdout, /ct114\.mesh enrolled/);
  assert.not.match(`${r.stdout}${r.stderr}`, token);
  assert.match(fs.readFileSync(s.ca.store.auditLog, 'utf8'), /"cn":"ct114.mesh".*"detail":"token [0-9a-f]{12}"/);
});

test('a lost reply is resumed: same key re-enrolls (secret or the spent token), a new key gets 409', async () => {
  const token = mustOk(await s.rivet(['token', 'ct115']), 'token').stdout.trim();
  const tokenFile = path.join(s.home, 'ct115.token');
  fs.writeFileSync(tokenFile, token, { mode: 0o600 });
  const dir = path.join(s.home, 'ct115');
  mustOk(await s.provision(dir, enrollArgs('ct115', ['--token-file', tokenFile])), 'enroll');
  const first = parseCertPem(fs.readFileSync(path.join(dir, 'node.crt'), 'utf8')).serial;
  fs.rmSync(path.join(dir, 'node.crt')); // as if killed after the CA signed, before the reply was stored
  fs.rmSync(path.join(dir, 'node.json'));
  const r = mustOk(
    await s.provision(dir, enrollArgs('ct115', ['--token-file', tokenFile])),
    'resume with the spent token',
  );
  assert.match(r.stdout, /re-using node\.key from an earlier run/);
  assert.is.not(parseCertPem(fs.readFileSync(path.join(dir, 'node.crt'), 'utf8')).serial, first);
  assert.match(
    fs.readFileSync(s.ca.store.auditLog, 'utf8'),
    new RegExp(`"cn":"ct115.mesh".*resumed: same key as serial ${first}`),
  );
  // Someone else with the spent token and their own key: refused.
  const thief = await s.provision(path.join(s.home, 'ct115-thief'), enrollArgs('ct115', ['--token-file', tokenFile]));
  assert.is(thief.exitCode, 1);
  assert.match(thief.stderr, /enrollment token [0-9a-f]{12} is used/);
  // …and with the bootstrap secret but a new key: 409, the identity is taken.
  const other = await s.provision(path.join(s.home, 'ct115-other'), enrollArgs('ct115'), {
    RIVET_BOOTSTRAP_SECRET: SECRET,
  });
  assert.is(other.exitCode, 1);
  assert.match(other.stderr, /409 already_enrolled.*--force re-enrolls only once the operator has revoked ct115\.mesh/);
});

test('--force re-enrolls with a new key only after the operator revoked the old cert', async () => {
  const dir = path.join(s.home, 'ct113');
  const before = snapshot(dir);
  const refused = await s.provision(dir, enrollArgs('ct113', ['--force']), { RIVET_BOOTSTRAP_SECRET: SECRET });
  assert.is(refused.exitCode, 1);
  assert.match(refused.stderr, /rivet-ca revoke ct113/);
  assert.equal(snapshot(dir), before, 'a refused --force leaves the node as it was (no node.key.next)');
  mustOk(await s.rivet(['revoke', 'ct113', '--no-push']), 'revoke');
  const noForce = await s.provision(dir, ['fetch-crl']);
  mustOk(noForce, 'fetch-crl');
  const revoked = await s.provision(dir, enrollArgs('ct113'), { RIVET_BOOTSTRAP_SECRET: SECRET });
  assert.is(revoked.exitCode, 1);
  assert.match(revoked.stderr, /is revoked by the installed CRL — re-enroll with --force/);
  const oldKey = fs.readFileSync(path.join(dir, 'node.key'));
  const r = mustOk(
    await s.provision(dir, enrollArgs('ct113', ['--force']), { RIVET_BOOTSTRAP_SECRET: SECRET }),
    'enroll --force',
  );
  assert.match(r.stdout, /ct113\.mesh enrolled/);
  assert.not.ok(fs.readFileSync(path.join(dir, 'node.key')).equals(oldKey), 'a new key');
  assert.not.ok(fs.existsSync(path.join(dir, 'node.key.next')));
  const leaf = parseCertPem(fs.readFileSync(path.join(dir, 'node.crt'), 'utf8'));
  assert.ok(publicKeyDer(leaf.x509).equals(spki(path.join(dir, 'node.key'))));
  mustOk(await s.provision(dir, ['status']), 'status after --force');
});

test('revoking a node revokes its agents; enroll --force brings them back with new keys and status is green', async () => {
  const dir = path.join(s.home, 'ct117');
  mustOk(
    await s.provision(dir, enrollArgs('ct117', ['--agent', 'opus']), { RIVET_BOOTSTRAP_SECRET: SECRET }),
    'enroll',
  );
  const agentKey = fs.readFileSync(path.join(dir, 'agents/opus.key'));
  const agentSerial = parseCertPem(fs.readFileSync(path.join(dir, 'agents/opus.crt'), 'utf8')).serial;
  const revoked = mustOk(await s.rivet(['revoke', 'ct117', '--reason', 'keyCompromise', '--no-push']), 'revoke');
  assert.match(revoked.stdout, new RegExp(`revoked opus@ct117 serial ${agentSerial} .*agent of ct117\\.mesh`));
  mustOk(await s.provision(dir, ['fetch-crl']), 'fetch-crl');
  const r = mustOk(
    await s.provision(dir, enrollArgs('ct117', ['--force']), { RIVET_BOOTSTRAP_SECRET: SECRET }),
    'enroll --force',
  );
  assert.match(r.stdout, new RegExp(`agent opus@ct117: serial ${agentSerial} was revoked with the node — new key`));
  assert.not.ok(fs.readFileSync(path.join(dir, 'agents/opus.key')).equals(agentKey), 'a new agent key');
  assert.is.not(parseCertPem(fs.readFileSync(path.join(dir, 'agents/opus.crt'), 'utf8')).serial, agentSerial);
  mustOk(await s.provision(dir, ['status']), 'status after --force');
});

test('`make renew` runs CA-side renewal and node-side renewal where a node is enrolled', async () => {
  const dir = path.join(s.home, 'ct111');
  const r = await execa('make', ['--no-print-directory', '-C', ROOT, 'renew'], {
    reject: false,
    env: { RIVET_CA_DIR: s.ca.store.dir, RIVET_NODE_DIR: dir, RIVET_ENV_FILE: '/dev/null' },
  });
  assert.is(r.exitCode, 0, `${r.stdout}${r.stderr}`);
  assert.match(String(r.stdout), /not due {2}ct111\.mesh/, 'node side ran');
  assert.match(String(r.stdout), /renew: \d+ renewed, \d+ not due/, 'CA side ran over issued/');
  const none = await execa('make', ['--no-print-directory', '-C', ROOT, 'renew'], {
    reject: false,
    env: {
      RIVET_CA_DIR: path.join(s.home, 'no-ca'),
      RIVET_NODE_DIR: path.join(s.home, 'no-node'),
      RIVET_ENV_FILE: '/dev/null',
    },
  });
  // Issue 15: a timer that finds nothing to renew is misconfigured, not idle — exit 2, saying where it looked.
  assert.is(none.exitCode, 2, 'nothing enrolled, no CA: a misconfigured timer');
  assert.match(String(none.stderr), /found neither a CA in .*no-ca \(RIVET_CA_DIR\) nor an enrolled node in .*no-node/);
});

test('a cron line is installed when asked, and kept as is on re-run', async () => {
  const dir = path.join(s.home, 'ct111');
  const root = path.join(s.home, 'cron-root');
  mustOk(
    await s.provision(dir, ['enroll', '--install-timer', 'cron', '--timer-root', root]),
    'enroll --install-timer cron',
  );
  const file = path.join(root, 'etc/cron.d/rivet-renew');
  const text = fs.readFileSync(file, 'utf8');
  assert.match(
    text,
    new RegExp(`^\\d{1,2} \\d \\* \\* \\* root RIVET_NODE_DIR=${dir} \\S+make --no-print-directory -C \\S+ renew`, 'm'),
  );
  assert.match(text, /^\*\/15 \* \* \* \* root RIVET_NODE_DIR=\S+ \S+provision-ct\.mts fetch-crl/m);
  const again = mustOk(await s.provision(dir, ['enroll', '--install-timer', 'cron', '--timer-root', root]), 'again');
  assert.match(again.stdout, /timer \(cron\): already installed/);
  assert.is(fs.readFileSync(file, 'utf8'), text);
});

test.run();
