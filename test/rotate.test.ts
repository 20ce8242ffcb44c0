// Intermediate rotation (DESIGN §4.1): real certificates, real Node TLS handshakes across the two
// generations, revocation on both, and retirement by tidy.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { cli, freshCa, opensslOk } from './helpers/ca.ts';
import type { Ca } from '../lib/ca/handle.ts';
import { parseIdentity } from '../lib/core/identity.ts';
import { issueWithNewKey } from '../lib/ops/operator-issue.ts';
import { leafValidity } from '../lib/sign/validity.ts';
import { rotateIntermediate } from '../lib/ops/rotate.ts';
import { revoke } from '../lib/ops/revoke.ts';
import { tidy } from '../lib/ops/tidy.ts';
import { parseCrlBundle, splitCrlBundle } from '../lib/x509/crl.ts';
import { DAY_MS } from '../lib/core/duration.ts';

type Peer = { key: string; cert: string };

async function issue(ca: Ca, node: string, days?: number): Promise<Peer & { serial: string }> {
  const r = await issueWithNewKey(ca, parseIdentity(node, ca.domain), { validity: leafValidity({ days }) });
  if ('skipped' in r) throw new Error('unexpected skip');
  return { key: fs.readFileSync(r.keyPath, 'utf8'), cert: fs.readFileSync(r.certPath, 'utf8'), serial: r.serial };
}

/** One mTLS handshake: `server` verifies with serverTrust, `client` with clientTrust; CRLs as an array. */
async function handshake(
  server: Peer,
  serverTrust: { ca: string; crl: string },
  client: Peer,
  clientTrust: { ca: string; crl: string },
  serverName: string,
): Promise<string> {
  const srv = tls.createServer(
    {
      key: server.key,
      cert: server.cert,
      ca: serverTrust.ca,
      crl: splitCrlBundle(serverTrust.crl),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (s) => s.end('hello'),
  );
  srv.on('tlsClientError', () => {});
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    return await new Promise<string>((resolve, reject) => {
      const sock = tls.connect({
        host: '127.0.0.1',
        port: (srv.address() as AddressInfo).port,
        servername: serverName,
        key: client.key,
        cert: client.cert,
        ca: clientTrust.ca,
        crl: splitCrlBundle(clientTrust.crl),
      });
      let data = '';
      sock.on('data', (d) => {
        data += d;
      });
      sock.on('end', () =>
        data === 'hello' ? resolve('ok') : reject(new Error(`no data (server refused the client): ${data}`)),
      );
      sock.on('error', (e: NodeJS.ErrnoException) => reject(new Error(e.code ?? e.message)));
    });
  } catch (err) {
    return (err as Error).message;
  } finally {
    srv.close();
  }
}

test('across a rotation nodes on both intermediates talk mTLS, and revocation works on both sides', async () => {
  const ca = await freshCa();
  const a = await issue(ca, 'ct111'); // generation 1
  const a2 = await issue(ca, 'ct114'); // generation 1, never revoked
  const oldChain = fs.readFileSync(ca.store.chainFile, 'utf8');
  const r = await rotateIntermediate(ca);
  assert.is(r.generation, 2);
  assert.is(r.previous, 1);
  const b = await issue(ca, 'ct112'); // generation 2
  const c = await issue(ca, 'ct113'); // generation 2
  assert.match(b.cert, /-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----/, 'node.crt carries its intermediate');
  const chain = fs.readFileSync(ca.store.chainFile, 'utf8');
  assert.is(chain.match(/BEGIN CERTIFICATE/g)!.length, 3, 'chain: intermediate 2, intermediate 1, root');
  const bundle = () => fs.readFileSync(ca.store.crlBundle, 'utf8');
  assert.equal(
    parseCrlBundle(bundle()).map((x) => x.issuerCNs[0]),
    ['Rivet Intermediate CA 2', 'Rivet Intermediate CA 1', 'Rivet Root CA'],
  );

  const oldNode = () => ({ ca: oldChain, crl: bundle() }); // old rivet-ca.crt, CRLs pushed since
  const newNode = () => ({ ca: chain, crl: bundle() }); // the pushed chain installed
  assert.is(await handshake(a, oldNode(), b, newNode(), 'ct111.mesh'), 'ok', 'old server, new client');
  assert.is(
    await handshake(b, newNode(), a, oldNode(), 'ct112.mesh'),
    'ok',
    'new server, old client (old rivet-ca.crt only)',
  );
  assert.is(await handshake(a, newNode(), b, newNode(), 'ct111.mesh'), 'ok');
  assert.is(await handshake(b, newNode(), a, newNode(), 'ct112.mesh'), 'ok');

  // A leaf of the old intermediate is revoked on the old intermediate's CRL.
  const ra = await revoke(ca, 'ct111');
  assert.equal(
    ra.revoked.map((x) => x.issuer),
    [1],
  );
  const prev1 = parseCrlBundle(fs.readFileSync(path.join(ca.store.previousDir, '1', 'crl.pem'), 'utf8'))[0]!;
  assert.ok(prev1.revoked.some((x) => x.serial === a.serial));
  assert.not.match(
    await handshake(c, newNode(), a, newNode(), 'ct113.mesh'),
    /^ok$/,
    'revoked old-generation client refused',
  );
  assert.not.match(
    await handshake(a, oldNode(), c, oldNode(), 'ct111.mesh'),
    /^ok$/,
    'revoked old-generation server refused',
  );
  assert.is(
    await handshake(c, newNode(), a2, oldNode(), 'ct113.mesh'),
    'ok',
    'other old-generation leaves keep working',
  );

  // A leaf of the new intermediate is revoked on the new one's CRL.
  const rb = await revoke(ca, 'ct112');
  assert.equal(
    rb.revoked.map((x) => x.issuer),
    [2],
  );
  const cur = parseCrlBundle(fs.readFileSync(path.join(ca.store.intermediateDir, 'crl.pem'), 'utf8'))[0]!;
  assert.ok(cur.revoked.some((x) => x.serial === b.serial));
  assert.not.match(
    await handshake(a2, oldNode(), b, newNode(), 'ct114.mesh'),
    /^ok$/,
    'revoked new-generation client refused by an old-chain node',
  );
  assert.is(await handshake(a2, oldNode(), c, newNode(), 'ct114.mesh'), 'ok');

  const v = await cli(ca, ['verify', ca.store.issued('ct114', 'crt')]);
  assert.is(v.exitCode, 0, v.stdout + v.stderr);
  const list = JSON.parse((await cli(ca, ['list', '--json'])).stdout) as Array<{
    cn: string;
    status: string;
    issuer: string;
  }>;
  assert.ok(list.some((x) => x.cn === 'ct114.mesh' && x.status === 'valid' && x.issuer === 'Rivet Intermediate CA 1'));
});

test('tidy retires the old intermediate once its last leaf has expired: out of chain and bundle, key gone', async () => {
  const ca = await freshCa();
  await issue(ca, 'ct111', 1);
  await rotateIntermediate(ca);
  await issue(ca, 'ct112');
  let t = await tidy(ca);
  assert.equal(t.retired, [], 'a leaf of intermediate 1 is still unexpired');
  t = await tidy(ca, new Date(Date.now() + 2 * DAY_MS));
  assert.equal(t.retired, [1]);
  assert.ok(fs.existsSync(path.join(ca.store.retiredDir, '1', 'int.crt')));
  assert.not.ok(fs.existsSync(path.join(ca.store.retiredDir, '1', 'int.key')));
  assert.not.ok(fs.existsSync(path.join(ca.store.previousDir, '1')));
  assert.is(fs.readFileSync(ca.store.chainFile, 'utf8').match(/BEGIN CERTIFICATE/g)!.length, 2);
  assert.equal(
    parseCrlBundle(fs.readFileSync(ca.store.crlBundle, 'utf8')).map((x) => x.issuerCNs[0]),
    ['Rivet Intermediate CA 2', 'Rivet Root CA'],
  );
  assert.equal(
    (await ca.store.intermediates()).map((i) => i.generation),
    [2],
  );
  const v = await opensslOk([
    'verify',
    '-crl_check_all',
    '-CRLfile',
    ca.store.crlBundle,
    '-CAfile',
    ca.store.chainFile,
    ca.store.issued('ct112', 'crt'),
  ]);
  assert.ok(v.ok, v.out);
  // a second rotation numbers on from the current generation
  const r = await rotateIntermediate(ca);
  assert.is(r.generation, 3);
  assert.equal(
    (await ca.store.intermediates()).map((i) => i.generation),
    [3, 2],
  );
});

test('rotate-intermediate from the CLI says what happened', async () => {
  const ca = await freshCa();
  const r = await cli(ca, ['rotate-intermediate']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /"Rivet Intermediate CA 2" issues from now on/);
  assert.match(r.stdout, /intermediate 1 keeps its CRL until its last leaf expires/);
  const none = await cli(path.join(path.dirname(ca.store.dir), 'nothing'), ['rotate-intermediate']);
  assert.is(none.exitCode, 1);
  assert.match(none.stderr, /no CA in .*`rivet-ca init`/);
});

test.run();
