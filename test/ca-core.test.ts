// The CA lifecycle through the real CLI and the real openssl: issue, verify with openssl's strictest
// flags, revoke, and a real Node TLS server that must accept the valid agent and refuse the revoked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { freshCa, cli, opensslOk } from './helpers/ca.ts';
import { splitCrlBundle, parseCrlBundle } from '../lib/x509/crl.ts';
import { parseCertPem } from '../lib/x509/cert.ts';
import type { Ca } from '../lib/ca/handle.ts';

let ca: Ca;
const issued = (stem: string, ext: string) => path.join(ca.store.dir, 'issued', `${stem}.${ext}`);
const strictVerify = (cert: string, purpose: string) =>
  opensslOk([
    'verify',
    '-x509_strict',
    '-crl_check_all',
    '-purpose',
    purpose,
    '-CAfile',
    ca.store.root().cert,
    '-untrusted',
    path.join(ca.store.dir, 'intermediate', 'int.crt'),
    '-CRLfile',
    ca.store.crlBundle,
    cert,
  ]);

// ct111.lan below is outside the mesh: the operator permitted it at intermediate time (DESIGN §3).
test.before(async () => {
  ca = await freshCa({ permit: ['DNS:lan'] });
});

test('issue-node and issue-agent write leaf+intermediate certs and 0600 keys', async () => {
  const node = await cli(ca, ['issue-node', 'ct111', '--san', 'DNS:ct111.lan', '--san', 'IP:10.1.2.3']);
  assert.is(node.exitCode, 0, node.stderr);
  assert.match(node.stdout, /issued ct111\.mesh \(serial [0-9A-F]+/);
  const agent = await cli(ca, ['issue-agent', 'opus@ct111', '--json']);
  assert.is(agent.exitCode, 0, agent.stderr);
  const json = JSON.parse(agent.stdout);
  assert.is(json.cn, 'opus@ct111');
  assert.equal(json.sans, ['URI:spiffe://mesh/agent/ct111/opus']);
  for (const stem of ['ct111', 'opus@ct111']) {
    assert.is(fs.statSync(issued(stem, 'key')).mode & 0o777, 0o600);
    assert.is(fs.statSync(issued(stem, 'crt')).mode & 0o777, 0o644);
    const pem = fs.readFileSync(issued(stem, 'crt'), 'utf8');
    assert.is(pem.match(/BEGIN CERTIFICATE/g)?.length, 2, 'leaf followed by its intermediate');
  }
  const info = parseCertPem(fs.readFileSync(issued('ct111', 'crt'), 'utf8'));
  assert.equal(info.dns, ['ct111.mesh', 'ct111-mcp.mesh', 'ct111-runtime-rpc.mesh', 'ct111.lan']);
  assert.equal(info.ips, ['10.1.2.3']);
  assert.ok(info.serial.length >= 16, 'random serial of at least 64 bits');
});

test('openssl verify -x509_strict -crl_check_all accepts node and agent certs', async () => {
  assert.ok((await strictVerify(issued('ct111', 'crt'), 'sslserver')).ok);
  assert.ok((await strictVerify(issued('ct111', 'crt'), 'sslclient')).ok);
  assert.ok((await strictVerify(issued('opus@ct111', 'crt'), 'sslclient')).ok);
  const asServer = await strictVerify(issued('opus@ct111', 'crt'), 'sslserver');
  assert.not.ok(asServer.ok, 'an agent cert is not a server cert');
});

async function handshake(server: tls.Server, stem: string): Promise<'accepted' | string> {
  const { port } = server.address() as { port: number };
  return new Promise((resolve) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'ct110.mesh',
      ca: fs.readFileSync(path.join(ca.store.dir, 'intermediate', 'chain.pem')),
      key: fs.readFileSync(issued(stem, 'key')),
      cert: fs.readFileSync(issued(stem, 'crt')),
      checkServerIdentity: () => undefined,
    });
    s.once('data', () => {
      s.destroy();
      resolve('accepted');
    });
    s.once('error', (err) => resolve(err.message));
    s.once('close', () => resolve('closed'));
  });
}

function mtlsServer(): Promise<tls.Server> {
  const read = (f: string) => fs.readFileSync(f);
  const server = tls.createServer(
    {
      key: read(issued('ct111', 'key')),
      cert: read(issued('ct111', 'crt')),
      ca: read(path.join(ca.store.dir, 'intermediate', 'chain.pem')),
      crl: splitCrlBundle(read(ca.store.crlBundle).toString()),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket) => socket.end('hello\n'),
  );
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('revoke: openssl reports the cert revoked and a Node TLS server refuses it', async () => {
  const before = await mtlsServer();
  try {
    assert.is(await handshake(before, 'opus@ct111'), 'accepted');
  } finally {
    before.close();
  }
  const r = await cli(ca, ['revoke', 'opus@ct111', '--reason', 'keyCompromise']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /revoked opus@ct111 serial/);
  const v = await strictVerify(issued('opus@ct111', 'crt'), 'sslclient');
  assert.not.ok(v.ok);
  assert.match(v.out, /certificate revoked/);
  assert.ok((await strictVerify(issued('ct111', 'crt'), 'sslserver')).ok, 'others stay valid');
  const server = await mtlsServer();
  try {
    const refused = await handshake(server, 'opus@ct111');
    assert.is.not(refused, 'accepted');
    await cli(ca, ['issue-agent', 'grok@ct111']);
  } finally {
    server.close();
  }
  const server2 = await mtlsServer();
  try {
    assert.is(await handshake(server2, 'grok@ct111'), 'accepted');
  } finally {
    server2.close();
  }
  const cliVerify = await cli(ca, ['verify', issued('opus@ct111', 'crt'), '--client']);
  assert.is(cliVerify.exitCode, 1);
  assert.match(cliVerify.stdout, /REFUSED[\s\S]*certificate revoked/);
});

test('renew then revoke: both serials land on the CRL', async () => {
  await cli(ca, ['issue-agent', 'sonnet@ct111']);
  const first = parseCertPem(fs.readFileSync(issued('sonnet@ct111', 'crt'), 'utf8'));
  const keyBefore = fs.readFileSync(issued('sonnet@ct111', 'key'));
  const renewed = await cli(ca, ['renew', 'sonnet@ct111']);
  assert.is(renewed.exitCode, 0, renewed.stderr);
  assert.match(renewed.stdout, /renewed +sonnet@ct111/);
  const second = parseCertPem(fs.readFileSync(issued('sonnet@ct111', 'crt'), 'utf8'));
  assert.is.not(second.serial, first.serial);
  assert.ok(fs.readFileSync(issued('sonnet@ct111', 'key')).equals(keyBefore), 'the key is re-used');
  const r = await cli(ca, ['revoke', 'sonnet@ct111', '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(
    JSON.parse(r.stdout)
      .revoked.map((x: { serial: string }) => x.serial)
      .sort(),
    [first.serial, second.serial].sort(),
  );
  const crls = parseCrlBundle(fs.readFileSync(ca.store.crlBundle, 'utf8'));
  assert.is(crls.length, 2, 'intermediate CRL then root CRL');
  const listed = crls[0]!.revoked.map((x) => x.serial);
  assert.ok(listed.includes(first.serial) && listed.includes(second.serial));
  const again = await cli(ca, ['revoke', 'sonnet@ct111']);
  assert.is(again.exitCode, 2);
  assert.match(again.stderr, /no unexpired, unrevoked certificate with CN "sonnet@ct111"/);
});

test('renew with no names leaves certs that are not due alone; agents follow their node', async () => {
  const none = await cli(ca, ['renew']);
  assert.is(none.exitCode, 0, none.stderr);
  assert.match(none.stdout, /renew: 0 renewed/);
  const node = await cli(ca, ['renew', '--within', '100d', '--json']);
  const results = JSON.parse(node.stdout) as Array<{ cn: string; action: string }>;
  assert.ok(results.some((r) => r.cn === 'ct111.mesh' && r.action === 'renewed'));
  assert.ok(results.some((r) => r.cn === 'grok@ct111' && r.action === 'renewed'));
  assert.ok(
    results.some((r) => r.cn === 'opus@ct111' && r.action === 'skipped'),
    'a revoked cert is not renewed',
  );
});

test('issue-agent --if-missing is a no-op while a valid cert exists', async () => {
  const before = fs.readFileSync(issued('grok@ct111', 'crt'));
  const r = await cli(ca, ['issue-agent', 'grok@ct111', '--if-missing']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /nothing to do/);
  assert.ok(fs.readFileSync(issued('grok@ct111', 'crt')).equals(before));
  const dup = await cli(ca, ['issue-agent', 'grok@ct111']);
  assert.is(dup.exitCode, 2);
  assert.match(dup.stderr, /already has a valid certificate .* use `renew`, `--if-missing`, or `--force`/);
});

test('list --json covers every certificate with the documented fields', async () => {
  const r = await cli(ca, ['list', '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
  const byCn = (cn: string) => rows.filter((x) => x.cn === cn);
  assert.ok(byCn('opus@ct111').every((x) => x.status === 'revoked'));
  assert.is(byCn('Rivet Intermediate CA 1')[0]?.kind, 'intermediate');
  for (const row of rows) {
    assert.equal(
      Object.keys(row).sort(),
      ['cn', 'daysLeft', 'issuer', 'kind', 'notAfter', 'notBefore', 'serial', 'status'].sort(),
    );
    assert.match(String(row.serial), /^[0-9A-F]+$/);
    assert.match(String(row.notBefore), /^\d{4}-\d{2}-\d{2}T/);
  }
});

test('crl re-signs the CRLs with a 7-day nextUpdate and a higher crlNumber', async () => {
  const before = parseCrlBundle(fs.readFileSync(ca.store.crlBundle, 'utf8'))[0]!;
  const r = await cli(ca, ['crl']);
  assert.is(r.exitCode, 0, r.stderr);
  const after = parseCrlBundle(fs.readFileSync(ca.store.crlBundle, 'utf8'))[0]!;
  assert.ok(after.crlNumber! > before.crlNumber!);
  const days = (after.nextUpdate!.getTime() - after.thisUpdate.getTime()) / 86_400_000;
  assert.is(Math.round(days), 7);
  const due = await cli(ca, ['crl', '--if-due']);
  assert.match(due.stdout, /fresh — nothing to do/);
});

test('sign uses only the CSR public key: requested CA:TRUE and a foreign CN are ignored', async () => {
  const dir = path.dirname(ca.store.dir);
  const key = path.join(dir, 'ext.key');
  const csr = path.join(dir, 'ext.csr');
  assert.ok(
    (
      await opensslOk([
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-noenc',
        '-keyout',
        key,
        '-out',
        csr,
        '-subj',
        '/CN=evil.example/O=Rivet Collective',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'subjectAltName=DNS:evil.example',
      ])
    ).ok,
  );
  const r = await cli(ca, ['sign', csr, '--as', 'claude@ct112', '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  const info = parseCertPem(fs.readFileSync(JSON.parse(r.stdout).cert, 'utf8'));
  assert.equal(info.subjectCNs, ['claude@ct112']);
  assert.is(info.ca, false);
  assert.equal(info.dns, []);
  assert.equal(info.uris, ['spiffe://mesh/agent/ct112/claude']);
});

test('status prints the root fingerprint and doctor flags the root key on disk', async () => {
  const r = await cli(ca, ['status']);
  assert.match(r.stdout, /root +sha256:[0-9a-f]{64}/);
  assert.match(r.stdout, /WARN +root key is still on this host/);
  assert.is(r.exitCode, 1);
  const fp = await opensslOk(['x509', '-in', ca.store.root().cert, '-noout', '-fingerprint', '-sha256']);
  assert.ok(r.stdout.includes(fp.out.split('=')[1]!.trim().replace(/:/g, '').toLowerCase()));
});

test.run();
