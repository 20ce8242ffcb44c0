// Expiry: back-dated validity (`--days N --not-before ISO`) and libfaketime (`faketime`, Debian) move
// certificates and CRLs past their dates. Expired certs are refused everywhere (openssl verify, our
// verify, Node TLS, the service's /renew); due certs renew and others do not; a lapsed CRL makes
// `doctor` fail and `crl` / `renew` refresh it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { execa } from 'execa';
import { CLI, cli, tempDir } from './helpers/ca.ts';
import { enrollFixture, call, newCsr } from './helpers/enroll.ts';
import { issueWithNewKey } from '../lib/ops/operator-issue.ts';
import { leafValidity } from '../lib/sign/validity.ts';
import { nodeId } from '../lib/core/identity.ts';
import { parseCrlBundle } from '../lib/x509/crl.ts';

let caDir: string;
const back = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z');
const issued = (stem: string, ext = 'crt') => path.join(caDir, 'issued', `${stem}.${ext}`);
const serialOf = (stem: string) => new X509Certificate(fs.readFileSync(issued(stem))).serialNumber;
/** The real CLI with the clock moved `offset` (libfaketime, e.g. '+8d'). */
const faked = (offset: string, args: string[]) =>
  execa('faketime', ['-f', `${offset} x1`, CLI, ...args], {
    reject: false,
    env: { RIVET_CA_DIR: caDir, RIVET_ENV_FILE: '/dev/null' },
  });

test.before(async () => {
  caDir = path.join(await tempDir('rivet-expiry-'), 'ca');
  for (const args of [
    ['init'],
    ['issue-intermediate'],
    ['issue-node', 'ct111'],
    ['issue-node', 'ct112', '--days', '10'],
    ['issue-node', 'ct113', '--days', '1', '--not-before', back(3)],
    ['issue-agent', 'old@ct113', '--days', '1', '--not-before', back(3)],
  ]) {
    const r = await cli(caDir, args);
    assert.is(r.exitCode, 0, `${args.join(' ')}: ${r.stderr}`);
  }
});

test('an expired cert is refused by openssl verify and by rivet-ca verify, as server and as client', async () => {
  const o = await execa(
    'openssl',
    [
      'verify',
      '-x509_strict',
      '-crl_check_all',
      '-CAfile',
      path.join(caDir, 'root', 'ca.crt'),
      '-untrusted',
      path.join(caDir, 'intermediate', 'int.crt'),
      '-CRLfile',
      path.join(caDir, 'crl.pem'),
      issued('ct113'),
    ],
    { reject: false, env: { OPENSSL_CONF: '/dev/null' } },
  );
  assert.is.not(o.exitCode, 0);
  assert.match(`${o.stdout}${o.stderr}`, /certificate has expired/);
  const ours = await cli(caDir, ['verify', issued('ct113'), '--server-name', 'ct113.mesh']);
  assert.is.not(ours.exitCode, 0);
  assert.match(ours.stdout + ours.stderr, /expired/);
  const agent = await cli(caDir, ['verify', issued('old@ct113'), '--client']);
  assert.is.not(agent.exitCode, 0);
  assert.match(agent.stdout + agent.stderr, /expired/);
});

test('Node TLS refuses an expired server cert (CERT_HAS_EXPIRED) and accepts a current one', async () => {
  const tryServer = async (stem: string) => {
    const server = tls.createServer(
      { cert: fs.readFileSync(issued(stem)), key: fs.readFileSync(issued(stem, 'key')) },
      (s) => s.end('ok'),
    );
    server.on('tlsClientError', () => {});
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      return await new Promise<string>((resolve) => {
        const s = tls.connect(
          {
            host: '127.0.0.1',
            port: (server.address() as AddressInfo).port,
            servername: `${stem}.mesh`,
            ca: fs.readFileSync(path.join(caDir, 'intermediate', 'chain.pem')),
          },
          () => {
            resolve('ok');
            s.destroy();
          },
        );
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
    } finally {
      await new Promise((r) => server.close(r));
    }
  };
  assert.is(await tryServer('ct113'), 'CERT_HAS_EXPIRED');
  assert.is(await tryServer('ct111'), 'ok');
});

test("the service's /renew refuses an expired client cert with 401", async () => {
  const fx = await enrollFixture();
  try {
    const old = await issueWithNewKey(
      fx.ca,
      { kind: 'node', nodeId: nodeId('ct150') },
      { validity: leafValidity({ days: 1, notBefore: new Date(Date.now() - 3 * 86_400_000) }) },
    );
    assert.not.ok('skipped' in old);
    const key = fx.ca.store.issued('ct150', 'key');
    const r = await call(fx, 'POST', '/renew', {
      body: { csr: (await newCsr(fx.work, 'ct150.mesh', key)).csr },
      cert: fs.readFileSync(fx.ca.store.issued('ct150', 'crt')),
      key: fs.readFileSync(key),
    });
    assert.is(r.status, 401, r.text);
    assert.is(r.json?.error?.code, 'client_cert_rejected');
    assert.match(r.json.error.message, /expired/i);
  } finally {
    await fx.close();
  }
});

test('renew renews the due cert (10 days left, key kept) and leaves the 90-day one alone', async () => {
  const before = { ct111: serialOf('ct111'), ct112: serialOf('ct112') };
  const keyBefore = fs.readFileSync(issued('ct112', 'key'), 'utf8');
  const r = await cli(caDir, ['renew']);
  assert.match(r.stdout + r.stderr, /ct112/);
  assert.is(serialOf('ct111'), before.ct111, 'not due: untouched');
  assert.is.not(serialOf('ct112'), before.ct112, 'due: renewed');
  assert.is(fs.readFileSync(issued('ct112', 'key'), 'utf8'), keyBefore, 'key re-used');
  const leaf = new X509Certificate(fs.readFileSync(issued('ct112')));
  assert.ok(new Date(leaf.validTo).getTime() - Date.now() > 80 * 86_400_000, 'renewed for the full lifetime');
});

test('with the clock 8 days ahead the intermediate CRL has lapsed: doctor fails, crl refreshes it, doctor passes the CRL', async () => {
  const lapsed = await faked('+8d', ['doctor']);
  assert.is.not(lapsed.exitCode, 0, 'doctor exits non-zero');
  assert.match(lapsed.stdout + lapsed.stderr, /FAIL\s+intermediate 1 CRL lapsed/);
  const crl = await faked('+8d', ['crl']);
  assert.is(crl.exitCode, 0, crl.stderr);
  const next = parseCrlBundle(fs.readFileSync(path.join(caDir, 'crl.pem'), 'utf8'))[0]!.nextUpdate!;
  assert.ok(
    next.getTime() > Date.now() + 14 * 86_400_000,
    `new nextUpdate ${next.toISOString()} is 7 days past the faked now`,
  );
  const after = await faked('+8d', ['doctor']);
  assert.match(after.stdout, /ok\s+intermediate 1 CRL valid until/);
});

test('renew alone (the daily cron job) also refreshes a CRL that is about to lapse', async () => {
  const before = parseCrlBundle(fs.readFileSync(path.join(caDir, 'crl.pem'), 'utf8'))[0]!;
  // The CRL from the previous test runs 15 days from the real now; 13 days ahead, 2 days remain (< 3).
  const r = await faked('+13d', ['renew', '--within', '1d']);
  const after = parseCrlBundle(fs.readFileSync(path.join(caDir, 'crl.pem'), 'utf8'))[0]!;
  assert.ok(after.crlNumber! > before.crlNumber!, `renew re-signed the CRL: ${r.stdout}${r.stderr}`);
  assert.ok(after.nextUpdate!.getTime() > before.nextUpdate!.getTime());
});

test.run();
