// lib/distribute/pull.ts across the life of intermediates: a node enrolled before `rotate-intermediate`
// (its rivet-ca.crt knows only the old intermediate) and one whose chain still names an
// intermediate that `tidy` retired must keep receiving CRLs. The pull brings the chain up to date
// from /ca.crt, accepting only CA certificates signed by the root the node already trusts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { enrollFixture, type Fixture } from './helpers/enroll.ts';
import { tempDir } from './helpers/ca.ts';
import { rotateIntermediate } from '../lib/ops/rotate.ts';
import { tidy } from '../lib/ops/tidy.ts';
import { pullCrl } from '../lib/distribute/pull.ts';
import { installCrlBundle, CrlRefused } from '../lib/distribute/install.ts';
import { parseConnectTo } from '../lib/distribute/mesh-request.ts';
import { crlReceiver } from '../lib/distribute/receiver.ts';
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import { transaction } from '../lib/sign/transaction.ts';
import { revokeSerial } from '../lib/sign/signer.ts';
import { rootCrl } from '../lib/ops/ceremony.ts';
import { issueWithNewKey } from '../lib/ops/operator-issue.ts';
import { nodeId } from '../lib/core/identity.ts';
import { loadMeshTls, meshServerOptions } from '../lib/mesh/tls.ts';
import { parseCrlBundle } from '../lib/x509/crl.ts';
import { DAY_MS } from '../lib/core/duration.ts';

let fx: Fixture;
test.before(async () => {
  fx = await enrollFixture();
});
test.after(async () => {
  await fx.close();
});

const pull = (dir: string) =>
  pullCrl({
    dir,
    datahub: 'https://ct110.mesh:8443',
    connectTo: parseConnectTo(`ct110.mesh:8443:127.0.0.1:${fx.service.port}`),
  });
const count = (pem: string) => pem.match(/BEGIN CERTIFICATE/g)?.length ?? 0;

/** A node dir as enrollment leaves it now: the current chain and CRL bundle. */
async function nodeDirNow(): Promise<string> {
  const dir = await tempDir('rivet-node-');
  fs.copyFileSync(fx.ca.store.chainFile, path.join(dir, 'rivet-ca.crt'));
  fs.copyFileSync(fx.ca.store.crlBundle, path.join(dir, 'crl.pem'));
  return dir;
}

test('after rotate-intermediate, a node with the old chain pulls the new bundle and the new chain', async () => {
  const dir = await nodeDirNow();
  await rotateIntermediate(fx.ca);
  const r = await pull(dir);
  assert.ok(r.installed);
  assert.equal(
    r.crls.map((c) => c.issuer),
    ['Rivet Intermediate CA 2', 'Rivet Intermediate CA 1', 'Rivet Root CA'],
  );
  assert.is(
    count(fs.readFileSync(path.join(dir, 'rivet-ca.crt'), 'utf8')),
    3,
    'rivet-ca.crt: both intermediates and the root',
  );
  assert.equal(
    parseCrlBundle(fs.readFileSync(path.join(dir, 'crl.pem'), 'utf8')).map((c) => c.issuerCNs[0]),
    r.crls.map((c) => c.issuer),
  );
});

test('after tidy retires an intermediate, a node whose chain still names it keeps pulling', async () => {
  const dir = await nodeDirNow(); // chain: intermediate 2, intermediate 1, root
  const int1 = new X509Certificate(
    fs.readFileSync((await fx.ca.store.intermediates()).find((i) => i.generation === 1)!.cert),
  );
  const t = await tidy(fx.ca, new Date(Date.now() + 400 * DAY_MS));
  assert.equal(t.retired, [1]);
  // The tidy above ran with the clock 400 days ahead; on this node's (real) clock intermediate 1
  // could still have valid leaves, so the node keeps it (test/mesh-receiver-chain.test.ts) unless
  // something it can verify says it is done: here the root's CRL revoking it, at a root ceremony.
  await transaction(fx.ca, 'root ceremony: revoke the retired intermediate', () =>
    revokeSerial(fx.ca.store.root(), int1.serialNumber, 'cessationOfOperation', fx.ca.root),
  );
  await rootCrl(fx.ca);
  const r = await pull(dir);
  assert.ok(r.installed);
  assert.equal(
    r.crls.map((c) => c.issuer),
    ['Rivet Intermediate CA 2', 'Rivet Root CA'],
  );
  assert.is(count(fs.readFileSync(path.join(dir, 'rivet-ca.crt'), 'utf8')), 2);
});

test('a served chain with a CA certificate the installed root did not sign is refused; nothing changes', async () => {
  const dir = await nodeDirNow();
  const other = await enrollFixture();
  try {
    const files = ['rivet-ca.crt', 'crl.pem'].map((n) => path.join(dir, n));
    const before = files.map((f) => fs.readFileSync(f, 'utf8'));
    const ours = fs.readFileSync(fx.ca.store.chainFile, 'utf8');
    const foreign = fs.readFileSync(other.ca.store.chainFile, 'utf8');
    const bundle = fs.readFileSync(fx.ca.store.crlBundle, 'utf8');
    const swapped = `${foreign.split(/(?<=-----END CERTIFICATE-----\n)/)[0]}${ours}`; // an impostor intermediate in front
    for (const chain of [foreign, swapped]) {
      try {
        await installCrlBundle(dir, bundle, { chain });
        assert.unreachable('installed');
      } catch (err) {
        assert.instance(err, CrlRefused);
        assert.is((err as CrlRefused).code, 'bad_chain');
      }
    }
    assert.equal(
      files.map((f) => fs.readFileSync(f, 'utf8')),
      before,
    );
  } finally {
    await other.close();
  }
});

test('a push after rotate-intermediate carries the chain: the node installs the new bundle at once, not at its next pull', async () => {
  const dir = await nodeDirNow(); // knows only the current intermediate and the root
  // The receiver is a mesh server (pushes come over mTLS only): its own node cert, and the pusher's.
  for (const n of ['ct111', 'ct109']) await issueWithNewKey(fx.ca, { kind: 'node', nodeId: nodeId(n) });
  fs.copyFileSync(fx.ca.store.issued('ct111', 'crt'), path.join(dir, 'node.crt'));
  fs.copyFileSync(fx.ca.store.issued('ct111', 'key'), path.join(dir, 'node.key'));
  const pusher = {
    cert: fs.readFileSync(fx.ca.store.issued('ct109', 'crt')),
    key: fs.readFileSync(fx.ca.store.issued('ct109', 'key')),
    ca: fs.readFileSync(path.join(dir, 'rivet-ca.crt')),
  };
  await rotateIntermediate(fx.ca);
  const receiver = https.createServer(
    meshServerOptions(loadMeshTls({ dir })),
    crlReceiver({ dir, allowFrom: ['ct109'] }),
  );
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const post = (body: string) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request(
        {
          ...pusher,
          servername: 'ct111.mesh',
          agent: false,
          host: '127.0.0.1',
          port: (receiver.address() as { port: number }).port,
          method: 'POST',
          path: '/api/mesh/crl',
        },
        (res) => {
          let text = '';
          res.on('data', (c) => {
            text += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  try {
    const bundle = fs.readFileSync(fx.ca.store.crlBundle, 'utf8');
    const bare = await post(bundle);
    assert.is(bare.status, 400, "without the chain the new intermediate's CRL cannot be checked");
    const other = await enrollFixture();
    try {
      const forged = await post(`${fs.readFileSync(other.ca.store.chainFile, 'utf8')}${bundle}`);
      assert.is(forged.status, 400, forged.text);
      assert.match(forged.text, /bad_chain/);
    } finally {
      await other.close();
    }
    const r = await post(`${fs.readFileSync(fx.ca.store.chainFile, 'utf8')}${bundle}`);
    assert.is(r.status, 200, r.text);
    assert.ok(JSON.parse(r.text).installed);
    assert.is(
      count(fs.readFileSync(path.join(dir, 'rivet-ca.crt'), 'utf8')),
      3,
      'new intermediate, old one and the root',
    );
    assert.equal(
      parseCrlBundle(fs.readFileSync(path.join(dir, 'crl.pem'), 'utf8')).map((c) => c.issuerCNs[0]),
      parseCrlBundle(bundle).map((c) => c.issuerCNs[0]),
    );
  } finally {
    receiver.closeAllConnections();
    receiver.close();
  }
});

test.run();
