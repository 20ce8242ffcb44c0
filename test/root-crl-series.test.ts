// RFC-clean CRLs and root CRLs that outlast an offline root (DESIGN §3, §5): authorityKeyIdentifier
// on every CRL, the root back-dated like the rest, and at each ceremony a series of root CRLs with
// overlapping windows for the next years. With libfaketime moving the CA host 400 days and 3 years
// ahead (root offline since day 0), the published root CRL is current and a node's mTLS works;
// doctor warns only when the series nears its end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { CLI, ROOT, cli, tempDir } from './helpers/ca.ts';
import { parseCrlBundle, crlSignedBy } from '../lib/x509/crl.ts';
import { parseCertPem } from '../lib/x509/cert.ts';
import { DAY_MS } from '../lib/core/duration.ts';

let home: string;
let caDir: string;
const file = (rel: string) => path.join(caDir, rel);
const crlsIn = (rel: string) => parseCrlBundle(fs.readFileSync(file(rel), 'utf8'));
const faked = (offset: string, args: string[]) =>
  execa('faketime', ['-f', `${offset} x1`, CLI, ...args], {
    reject: false,
    env: { RIVET_CA_DIR: caDir, RIVET_ENV_FILE: '/dev/null' },
  });

test.before(async () => {
  home = await tempDir('rivet-rootcrl-');
  caDir = path.join(home, 'ca');
  for (const args of [
    ['init'],
    ['issue-intermediate'],
    ['issue-node', 'ct111'],
    ['root', 'offline', '--to', path.join(home, 'usb')],
  ]) {
    const r = await cli(caDir, args);
    assert.is(r.exitCode, 0, `${args.join(' ')}: ${r.stderr}`);
  }
});

test('openssl crl -text shows Authority Key Identifier on the intermediate and the root CRL, matching each issuer', async () => {
  for (const [crl, cert] of [
    ['intermediate/crl.pem', 'intermediate/int.crt'],
    ['root/crl.pem', 'root/ca.crt'],
  ]) {
    const text = String(
      (await execa('openssl', ['crl', '-in', file(crl!), '-noout', '-text'], { env: { OPENSSL_CONF: '/dev/null' } }))
        .stdout,
    );
    const aki = /X509v3 Authority Key Identifier:\s*\n\s*(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1];
    const ski = /X509v3 Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/.exec(
      String((await execa('openssl', ['x509', '-in', file(cert!), '-noout', '-text'])).stdout),
    )?.[1];
    assert.ok(aki, `${crl} has no Authority Key Identifier:\n${text}`);
    assert.is(aki, ski, `${crl} names its issuer's key`);
  }
});

test('root notBefore ≤ intermediate notBefore ≤ leaf notBefore, the root back-dated 5 minutes', () => {
  const [root, int, leaf] = ['root/ca.crt', 'intermediate/int.crt', 'issued/ct111.crt'].map((f) =>
    parseCertPem(fs.readFileSync(file(f), 'utf8')),
  );
  assert.ok(
    root!.notBefore <= int!.notBefore,
    `root ${root!.notBefore.toISOString()} ≤ intermediate ${int!.notBefore.toISOString()}`,
  );
  assert.ok(
    int!.notBefore <= leaf!.notBefore,
    `intermediate ${int!.notBefore.toISOString()} ≤ leaf ${leaf!.notBefore.toISOString()}`,
  );
  const audit = fs
    .readFileSync(file('audit.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { event: string; ts?: string; time?: string });
  const initAt = Date.parse(audit.find((a) => a.event === 'init')!.ts ?? audit.find((a) => a.event === 'init')!.time!);
  const back = (initAt - root!.notBefore.getTime()) / 1000;
  assert.ok(back >= 295 && back <= 330, `root starts ${back} s before init, want about 300`);
  assert.ok(root!.notAfter.getTime() - root!.notBefore.getTime() === 3650 * DAY_MS, '10 years from its start');
});

test('the series: overlapping windows for 5 years, rising crlNumbers, all signed by the root, the first one published', () => {
  const series = crlsIn('root/crl-series.pem');
  const root = parseCertPem(fs.readFileSync(file('root/ca.crt'), 'utf8')).x509;
  assert.ok(series.length >= 9, `${series.length} windows`);
  series.forEach((c, i) => {
    assert.ok(crlSignedBy(c, root), `window ${i + 1} signed by the root`);
    assert.is(Math.round((c.nextUpdate!.getTime() - c.thisUpdate.getTime()) / DAY_MS), 365);
    const next = series[i + 1];
    if (!next) return;
    assert.ok(
      next.thisUpdate > c.thisUpdate && next.thisUpdate < c.nextUpdate!,
      `window ${i + 2} starts inside window ${i + 1}`,
    );
    assert.ok(next.crlNumber! > c.crlNumber!, 'crlNumbers rise with the windows');
  });
  assert.ok(series[series.length - 1]!.nextUpdate!.getTime() > Date.now() + 5 * 365 * DAY_MS, 'reaches 5 years out');
  assert.equal(crlsIn('root/crl.pem')[0]!.der, series[0]!.der, 'root/crl.pem is the first window');
  const bundle = crlsIn('crl.pem');
  assert.equal(bundle[bundle.length - 1]!.der, series[0]!.der, 'crl.pem ends with it');
});

/** A node dir for ct200 and its agent opus, from what the CA host published at that time. */
function nodeDir(name: string): string {
  const dir = path.join(home, name);
  fs.mkdirSync(path.join(dir, 'agents'), { recursive: true, mode: 0o700 });
  fs.copyFileSync(file('issued/ct200.key'), path.join(dir, 'node.key'));
  fs.copyFileSync(file('issued/ct200.crt'), path.join(dir, 'node.crt'));
  fs.copyFileSync(file('issued/opus@ct200.key'), path.join(dir, 'agents', 'opus.key'));
  fs.copyFileSync(file('issued/opus@ct200.crt'), path.join(dir, 'agents', 'opus.crt'));
  fs.copyFileSync(file('intermediate/chain.pem'), path.join(dir, 'rivet-ca.crt'));
  fs.copyFileSync(file('crl.pem'), path.join(dir, 'crl.pem'));
  return dir;
}

/** mTLS between a lib server (ct200) and its agent, in a process whose clock is moved `offset`. */
async function mtlsAt(offset: string, dir: string): Promise<string> {
  const script = path.join(home, 'mtls.mts');
  fs.writeFileSync(
    script,
    `import https from 'node:https';
import { loadMeshTls, meshServerOptions, meshClientOptions, peerIdentity } from ${JSON.stringify(path.join(ROOT, 'lib', 'index.ts'))};
const dir = process.argv[2];
const server = https.createServer(meshServerOptions(loadMeshTls({ dir, domain: 'mesh' })), (req, res) => res.end(peerIdentity(req.socket).cn));
server.listen(0, '127.0.0.1', () => {
  const opts = { host: '127.0.0.1', port: server.address().port, servername: 'ct200.mesh', agent: false, ...meshClientOptions(loadMeshTls({ dir, agent: 'opus', domain: 'mesh' })) };
  https.get(opts, (res) => { let b = ''; res.on('data', (d) => { b += d; }); res.on('end', () => { process.stdout.write(res.statusCode + ' ' + b); server.close(); }); })
    .on('error', (e) => { process.stdout.write('ERR ' + e.code + ' ' + e.message); process.exitCode = 1; server.close(); });
});
`,
  );
  const r = await execa('faketime', ['-f', `${offset} x1`, process.execPath, '--import', 'tsx', script, dir], {
    reject: false,
    cwd: ROOT,
  });
  return `${r.stdout}${r.stderr}`.trim();
}

for (const [offset, label, swap] of [
  ['+400d', '400 days', 'renew'],
  ['+1095d', '3 years', 'crl'],
] as const) {
  test(`${label} on, root offline since day 0: \`${swap}\` publishes the current root CRL and a node's mTLS works`, async () => {
    const r = await faked(offset, [swap]);
    assert.is(r.exitCode, 0, r.stderr + r.stdout);
    const now = Date.now() + Number(offset.slice(1, -1)) * DAY_MS;
    const published = crlsIn('root/crl.pem')[0]!;
    assert.ok(
      published.thisUpdate.getTime() <= now - DAY_MS && published.nextUpdate!.getTime() > now + 60 * DAY_MS,
      `root CRL ${published.thisUpdate.toISOString()} – ${published.nextUpdate!.toISOString()} is current at ${new Date(now).toISOString()}`,
    );
    const bundle = crlsIn('crl.pem');
    assert.equal(bundle[bundle.length - 1]!.der, published.der, 'crl.pem carries it');
    for (const args of [
      ['issue-node', 'ct200', '--force'],
      ['issue-agent', 'opus@ct200', '--force'],
    ]) {
      const i = await faked(offset, args);
      assert.is(i.exitCode, 0, i.stderr);
    }
    const mtls = await mtlsAt(offset, nodeDir(`node-${label.replace(' ', '')}`));
    assert.ok(/^200 opus@ct200$/.test(mtls), mtls);
    const doctor = await faked(offset, ['doctor']);
    assert.not.match(doctor.stdout, /(WARN|FAIL)\s+root CRL/, doctor.stdout);
    assert.match(doctor.stdout, /ok\s+root CRL valid until .*\(window \d+ of \d+\)/);
  });
}

test('doctor warns 60 days before the series ends, not before', async () => {
  const end = crlsIn('root/crl-series.pem').at(-1)!.nextUpdate!.getTime();
  const days = (t: number) => `+${Math.floor((t - Date.now()) / DAY_MS)}d`;
  for (const args of [['crl'], ['doctor']]) {
    const early = await faked(days(end - 70 * DAY_MS), args);
    if (args[0] === 'doctor') assert.not.match(early.stdout, /WARN\s+root CRL series ends/, early.stdout);
  }
  const late = await faked(days(end - 30 * DAY_MS), ['doctor']);
  assert.is(late.exitCode, 1);
  assert.match(
    late.stdout,
    /WARN\s+root CRL series ends .* \((29|30) days\) — bring the root online and run `rivet-ca root crl`/,
  );
});

test.run();
