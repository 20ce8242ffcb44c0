// Signing many CSRs under one profile config (lib/sign/signer.ts signCsrBatch via lib/ops/issue.ts
// signLeaves): the per-certificate subject and SAN come from the CSRs, so only CSRs that carry
// exactly the profile's may take that path, and nothing else a CSR asks for may reach a
// certificate. Also our profile CSRs read back by openssl, the group-commit mechanics, and the
// enrollment queue keeping two requests for one name apart.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { execa } from 'execa';
import { freshCa, opensslOk, tempDir } from './helpers/ca.ts';
import { enrollFixture, call, caState, SECRET } from './helpers/enroll.ts';
import {
  csrProfileMismatch,
  csrPublicKey,
  newKeyAndCsr,
  newKeysAndCsrs,
  type CsrSubject,
  type KeyRequest,
} from '../lib/sign/csr.ts';
import { leafProfile } from '../lib/sign/profile.ts';
import { signLeaves, type LeafRequest } from '../lib/ops/issue.ts';
import { leafValidity } from '../lib/sign/validity.ts';
import { leafSubjectDer } from '../lib/x509/der-write.ts';
import { parseCertPem, OID } from '../lib/x509/cert.ts';
import { checkIssued } from '../lib/x509/leaf-check.ts';
import { parseSan } from '../lib/core/san.ts';
import { agentId, meshDomain, nodeId, type Identity } from '../lib/core/identity.ts';
import { transaction } from '../lib/sign/transaction.ts';

/** The batch path's yes/no: a CSR carries the profile when no mismatch is found. */
const csrCarriesProfile = (csr: string, want: CsrSubject) => csrProfileMismatch(csr, want) === undefined;

const domain = meshDomain('mesh');
const node = (id: string): Identity => ({ kind: 'node', nodeId: nodeId(id) });

/** A new key (file in `work`) and our CSR for `subject`, made by openssl as lib/sign/csr.ts makes them. */
async function profileCsr(work: string, subject: CsrSubject): Promise<{ csrPem: string; keyFile: string }> {
  const keyFile = path.join(work, `${subject.cn}-${Math.random().toString(16).slice(2)}.key`);
  fs.writeFileSync(keyFile, '', { mode: 0o600 });
  return { csrPem: (await newKeyAndCsr(keyFile, 'ec-p256', subject)).csrPem, keyFile };
}

/**
 * A CSR made by the openssl binary as a client might: subject `subj`, the given -addext
 * extensions, a new P-256 key unless `keyFile` is given, and `config` as its openssl config.
 */
async function opensslCsr(
  work: string,
  subj: string,
  addext: string[] = [],
  opts: { keyFile?: string; config?: string } = {},
): Promise<string> {
  const tag = Math.random().toString(16).slice(2);
  const keyArgs = opts.keyFile
    ? ['-key', opts.keyFile]
    : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc', '-keyout', path.join(work, `csr-${tag}.key`)];
  let configArgs: string[] = [];
  if (opts.config) {
    fs.writeFileSync(path.join(work, `csr-${tag}.cnf`), opts.config);
    configArgs = ['-config', path.join(work, `csr-${tag}.cnf`)];
  }
  const r = await execa(
    'openssl',
    ['req', '-new', ...configArgs, ...keyArgs, '-subj', subj, ...addext.flatMap((e) => ['-addext', e])],
    { env: { OPENSSL_CONF: '/dev/null' } },
  );
  return String(r.stdout);
}

const profileSan = (id: Identity, sans: string[] = []) => {
  const p = leafProfile(id, domain, sans.map(parseSan));
  return `subjectAltName=${[...p.dns.map((d) => `DNS:${d}`), ...p.ips.map((i) => `IP:${i}`), ...p.uris.map((u) => `URI:${u}`)].join(',')}`;
};

test('our CSR passes `openssl req -verify`, says exactly the profile, and counts as carrying it', async () => {
  const work = await tempDir();
  const p = leafProfile(node('ct7'), domain, [
    parseSan('DNS:ct7.lan'),
    parseSan('IP:10.1.2.3'),
    parseSan('IP:fd00::7'),
  ]);
  const { csrPem: csr } = await profileCsr(work, p);
  fs.writeFileSync(path.join(work, 'r.csr'), csr);
  const v = await opensslOk(['req', '-in', path.join(work, 'r.csr'), '-verify', '-noout', '-text']);
  assert.ok(v.ok && /verify OK/.test(v.out), v.out);
  assert.match(v.out, /Subject: CN ?= ?ct7\.mesh/);
  assert.match(
    v.out,
    /DNS:ct7\.mesh, DNS:ct7-mcp\.mesh, DNS:ct7-runtime-rpc\.mesh, DNS:ct7\.lan, IP Address:10\.1\.2\.3, IP Address:FD00:0:0:0:0:0:0:7, URI:spiffe:\/\/mesh\/node\/ct7/,
  );
  assert.ok(csrCarriesProfile(csr, p));
  await csrPublicKey(csr); // proof of possession checks in process too
  const bare = await profileCsr(work, { cn: 'ct7.mesh' });
  fs.writeFileSync(path.join(work, 'bare.csr'), bare.csrPem);
  const bareText = await opensslOk(['req', '-in', path.join(work, 'bare.csr'), '-verify', '-noout', '-text']);
  assert.ok(bareText.ok && /verify OK/.test(bareText.out), bareText.out);
  assert.not.match(bareText.out, /Alternative Name/);
  assert.not.ok(csrCarriesProfile(bare.csrPem, p), 'a CSR without the SAN does not');
});

test('csrCarriesProfile: the same SAN from openssl counts; an extra extension, another order, an extra RDN or another CN do not', async () => {
  const work = await tempDir();
  const id = node('ct8');
  const p = leafProfile(id, domain);
  assert.ok(
    csrCarriesProfile(await opensslCsr(work, '/CN=ct8.mesh', [profileSan(id)]), p),
    'openssl -addext with the profile SAN',
  );
  assert.not.ok(csrCarriesProfile(await opensslCsr(work, '/CN=ct8.mesh', []), p), 'no SAN');
  assert.not.ok(
    csrCarriesProfile(await opensslCsr(work, '/CN=ct8.mesh', [profileSan(id), 'basicConstraints=critical,CA:TRUE']), p),
    'extra basicConstraints',
  );
  assert.not.ok(
    csrCarriesProfile(
      await opensslCsr(work, '/CN=ct8.mesh', [
        `subjectAltName=URI:${p.uris[0]},DNS:ct8.mesh,DNS:ct8-mcp.mesh,DNS:ct8-runtime-rpc.mesh`,
      ]),
      p,
    ),
    'other order',
  );
  assert.not.ok(
    csrCarriesProfile(
      await opensslCsr(work, '/CN=ct8.mesh', [
        `subjectAltName=critical,${profileSan(id).slice('subjectAltName='.length)}`,
      ]),
      p,
    ),
    'critical SAN',
  );
  assert.not.ok(csrCarriesProfile(await opensslCsr(work, '/CN=ct9.mesh', [profileSan(id)]), p), 'another CN');
  assert.not.ok(csrCarriesProfile(await opensslCsr(work, '/O=Evil/CN=ct8.mesh', [profileSan(id)]), p), 'extra O= RDN');
});

test('signLeaves: profile CSRs share one openssl run; a CSR asking for more is signed alone and gets only the profile', async () => {
  const ca = await freshCa();
  const work = await tempDir();
  const requests: LeafRequest[] = [];
  for (const n of ['b1', 'b2', 'b3']) {
    const { csrPem } = await profileCsr(work, leafProfile(node(n), domain));
    requests.push({ id: node(n), csrPem, publicKey: await csrPublicKey(csrPem), sans: [] });
  }
  // The profile SAN plus a CA flag and a path length: must not take the copying path.
  const greedy = await opensslCsr(work, '/CN=b4.mesh', [
    profileSan(node('b4')),
    'basicConstraints=critical,CA:TRUE',
    'nameConstraints=permitted;DNS:mesh',
  ]);
  requests.push({ id: node('b4'), csrPem: greedy, publicKey: await csrPublicKey(greedy), sans: [] });
  const { csrPem: agentCsr } = await profileCsr(
    work,
    leafProfile({ kind: 'agent', agentId: agentId('opus'), nodeId: nodeId('b1') }, domain),
  );
  requests.push({
    id: { kind: 'agent', agentId: agentId('opus'), nodeId: nodeId('b1') },
    csrPem: agentCsr,
    publicKey: await csrPublicKey(agentCsr),
    sans: [],
  });

  const validity = leafValidity();
  const issuer = await ca.store.current();
  const results = await transaction(ca, 'test batch', () => signLeaves(ca, issuer, requests, validity));
  const chain = path.join(ca.store.dir, 'chain-and-root.pem');
  fs.writeFileSync(chain, fs.readFileSync(ca.store.chainFile, 'utf8'));
  const serials = new Set<string>();
  for (const [i, r] of results.entries()) {
    assert.ok(!(r instanceof Error), `request ${i}: ${(r as Error).message}`);
    const issued = r as Exclude<typeof r, Error>;
    const p = leafProfile(requests[i]!.id, domain);
    assert.is(issued.cn, p.cn);
    assert.equal(issued.info.dns, p.dns);
    assert.equal(issued.info.uris, p.uris);
    assert.is(issued.info.ca, false);
    assert.equal(
      issued.info.extensions.map((e) => e.oid).sort(),
      [OID.basicConstraints, OID.keyUsage, OID.eku, OID.ski, OID.aki, OID.san].sort(),
    );
    const leaf = path.join(ca.store.dir, `leaf${i}.pem`);
    fs.writeFileSync(leaf, issued.certPem.split(/(?<=-----END CERTIFICATE-----\n)/)[0]!);
    const v = await opensslOk([
      'verify',
      '-x509_strict',
      '-CAfile',
      path.join(ca.store.rootDir, 'ca.crt'),
      '-untrusted',
      ca.store.chainFile,
      '-purpose',
      'sslclient',
      leaf,
    ]);
    assert.ok(v.ok, v.out);
    serials.add(issued.serial);
  }
  assert.is(serials.size, requests.length);
  const db = fs.readFileSync(path.join(issuer.dir, 'index.txt'), 'utf8');
  for (const s of serials) assert.ok(db.includes(`\t${s}\t`), `serial ${s} recorded by openssl ca`);
});

test('checkIssued refuses a certificate carrying an extension outside the leaf profile', async () => {
  const ca = await freshCa();
  const work = await tempDir();
  const issuer = await ca.store.current();
  const p = leafProfile(node('x1'), domain);
  const made = await profileCsr(work, p);
  const key = createPrivateKey(fs.readFileSync(made.keyFile));
  fs.writeFileSync(path.join(work, 'r.csr'), made.csrPem);
  fs.writeFileSync(
    path.join(work, 'ext.cnf'),
    `[e]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\nsubjectAltName=${profileSan(node('x1')).slice(15)}\nnsComment=smuggled\n`,
  );
  const r = await execa(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      path.join(work, 'r.csr'),
      '-CA',
      issuer.cert,
      '-CAkey',
      issuer.key,
      '-set_serial',
      '0x1234',
      '-extfile',
      path.join(work, 'ext.cnf'),
      '-extensions',
      'e',
      '-days',
      '90',
    ],
    { env: { OPENSSL_CONF: '/dev/null' } },
  );
  const info = parseCertPem(String(r.stdout));
  const want = {
    cn: p.cn,
    dns: p.dns,
    ips: p.ips,
    uris: p.uris,
    eku: p.eku,
    ca: false,
    issuer: new X509Certificate(fs.readFileSync(issuer.cert)),
    publicKey: key,
    notBefore: info.notBefore,
    notAfter: info.notAfter,
  };
  assert.throws(() => checkIssued(info, want), /extensions outside the profile: \[2\.16\.840\.1\.113730\.1\.13\]/);
});

test('the enrollment queue: two requests for one node at once give one certificate and one 409, never two', async () => {
  const fx = await enrollFixture();
  try {
    for (const n of ['d1', 'd2', 'd3']) {
      const csrs = await Promise.all(
        [1, 2].map(async () => (await profileCsr(fx.work, leafProfile(node(n), domain))).csrPem),
      );
      const replies = await Promise.all(
        csrs.map((csr) => call(fx, 'POST', '/enroll', { bearer: SECRET, body: { csr } })),
      );
      assert.equal(replies.map((r) => r.status).sort(), [200, 409], replies.map((r) => r.text).join('\n'));
    }
    const rows = fs.readFileSync(path.join(fx.ca.store.dir, 'intermediate', 'index.txt'), 'utf8');
    for (const n of ['d1', 'd2', 'd3'])
      assert.is(rows.split('\n').filter((l) => l.endsWith(`/CN=${n}.mesh`)).length, 1, `${n} once in the database`);
  } finally {
    await fx.close();
  }
});

/** A CSR whose CN is a BMPString: reads as the same text, encodes differently (review finding). */
const BMP_STRINGS = '[req]\ndistinguished_name=dn\nstring_mask=MASK:0x800\n[dn]\n';

const rowsOf = (ca: { store: { dir: string } }) =>
  fs
    .readFileSync(path.join(ca.store.dir, 'intermediate', 'index.txt'), 'utf8')
    .split('\n')
    .filter(Boolean);

test('a CN in another string type (BMPString) never takes the copying path: the row and certificate name the node plainly', async () => {
  const fx = await enrollFixture();
  try {
    const csrs = await Promise.all(
      ['s1', 's2'].map((n) => opensslCsr(fx.work, `/CN=${n}.mesh`, [profileSan(node(n))], { config: BMP_STRINGS })),
    );
    assert.not.ok(csrCarriesProfile(csrs[0]!, leafProfile(node('s1'), domain)));
    const replies = await Promise.all(
      csrs.map((csr) => call(fx, 'POST', '/enroll', { bearer: SECRET, body: { csr } })),
    );
    assert.equal(
      replies.map((r) => r.status),
      [200, 200],
      replies.map((r) => r.text).join('\n'),
    );
    for (const r of replies)
      assert.ok(parseCertPem(r.json.cert).subjectDer.equals(leafSubjectDer(r.json.cn)), 'UTF8String CN only');
    for (const n of ['s1', 's2'])
      assert.is(rowsOf(fx.ca).filter((l) => l.endsWith(`\t/CN=${n}.mesh`)).length, 1, `${n}: one row, plain CN`);
    // So the one-live-certificate rule still sees it: a second enrollment of s1 is refused.
    const again = await call(fx, 'POST', '/enroll', {
      bearer: SECRET,
      body: { csr: (await profileCsr(fx.work, leafProfile(node('s1'), domain))).csrPem },
    });
    assert.is(again.status, 409, again.text);
  } finally {
    await fx.close();
  }
});

test('a "NEW CERTIFICATE REQUEST" block ahead of the checked one is refused, and openssl is only ever given the checked DER', async () => {
  const fx = await enrollFixture();
  try {
    const work = fx.work;
    const key = path.join(work, 'same.key');
    fs.writeFileSync(key, '', { mode: 0o600 });
    const honest = (await newKeyAndCsr(key, 'ec-p256', leafProfile(node('h1'), domain))).csrPem;
    const evil = (
      await opensslCsr(work, '/O=Rivet Collective/CN=evil.mesh', [profileSan(node('h1'))], { keyFile: key })
    ).replace(/CERTIFICATE REQUEST-----/g, 'NEW CERTIFICATE REQUEST-----');
    const before = caState(fx.ca);
    const r = await call(fx, 'POST', '/enroll', { bearer: SECRET, body: { csr: `${evil}${honest}` } });
    assert.is(r.status, 400, r.text);
    assert.is(r.json.error.code, 'bad_csr');
    const after = caState(fx.ca);
    delete before['audit.log'];
    delete after['audit.log'];
    assert.equal(after, before, 'nothing changed but the audit log');
    // Below the service, the signer itself re-armours the one checked block: the O= never reaches openssl.
    const issuer = await fx.ca.store.current();
    const pk = await csrPublicKey(honest);
    const h2 = (await profileCsr(work, leafProfile(node('h2'), domain))).csrPem;
    const h2key = await csrPublicKey(h2);
    const [issued] = await transaction(fx.ca, 'test', () =>
      signLeaves(
        fx.ca,
        issuer,
        [
          { id: node('h1'), csrPem: `${evil}${honest}`, publicKey: pk, sans: [] }, // shared run with h2
          { id: node('h2'), csrPem: h2, publicKey: h2key, sans: [] },
        ],
        leafValidity(),
      ),
    );
    assert.ok(!(issued instanceof Error), String(issued));
    const info = (issued as Exclude<typeof issued, Error | undefined>).info;
    assert.equal([info.subjectCNs, info.subjectOrg], [['h1.mesh'], []]);
    assert.is(rowsOf(fx.ca).filter((l) => /evil/.test(l)).length, 0, 'openssl never signed the unchecked block');
    assert.not.match(fs.readFileSync(fx.ca.store.auditLog, 'utf8'), /"event":"void"/);
  } finally {
    await fx.close();
  }
});

test('a request openssl skips in a shared run does not get the others signed twice; what fails its check is revoked at once', async () => {
  const ca = await freshCa();
  const work = await tempDir();
  const good = await Promise.all(
    ['g1', 'g2'].map(async (n) => {
      const { csrPem } = await profileCsr(work, leafProfile(node(n), domain));
      return { id: node(n), csrPem, publicKey: await csrPublicKey(csrPem), sans: [] } as LeafRequest;
    }),
  );
  // A profile CSR whose signature is broken (one byte of it flipped): openssl skips it, exit 0.
  const { csrPem: sound } = await profileCsr(work, leafProfile(node('g3'), domain));
  const der = Buffer.from(sound.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  der[der.length - 5] ^= 0xff;
  const broken = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;
  const g3key = await csrPublicKey(sound);
  // And a caller bug: a CSR for one key, presented as another's. Signed, then refused by the check.
  const other = await profileCsr(work, leafProfile(node('g4'), domain));
  const wrongKey = await csrPublicKey((await profileCsr(work, leafProfile(node('g4'), domain))).csrPem);
  const requests: LeafRequest[] = [
    ...good,
    { id: node('g3'), csrPem: broken, publicKey: g3key, sans: [] },
    { id: node('g4'), csrPem: other.csrPem, publicKey: wrongKey, sans: [] },
  ];
  const issuer = await ca.store.current();
  const results = await transaction(ca, 'test', () => signLeaves(ca, issuer, requests, leafValidity()));
  assert.ok(!(results[0] instanceof Error) && !(results[1] instanceof Error), String(results[0]));
  assert.ok(results[2] instanceof Error, 'the broken CSR fails');
  assert.match(String(results[3]), /public key: differs from the request/);
  const rows = rowsOf(ca);
  for (const n of ['g1', 'g2'])
    assert.equal(
      rows.filter((l) => l.endsWith(`/CN=${n}.mesh`)).map((l) => l[0]),
      ['V'],
      `${n}: exactly one live row`,
    );
  assert.is(rows.filter((l) => l.endsWith('/CN=g3.mesh')).length, 0, 'g3: nothing recorded');
  const g4 = rows.filter((l) => l.endsWith('/CN=g4.mesh'));
  assert.ok(
    g4.length >= 1 && g4.every((l) => l.startsWith('R')),
    `g4: recorded but revoked at once: ${g4.join(' | ')}`,
  );
  const audit = fs.readFileSync(ca.store.auditLog, 'utf8');
  assert.is(audit.split('\n').filter((l) => l.includes('"event":"void"')).length, g4.length);
  const crl = await opensslOk(['crl', '-in', path.join(issuer.dir, 'crl.pem'), '-noout', '-text']);
  for (const l of g4) assert.match(crl.out, new RegExp(l.split('\t')[3]!), 'on the CRL');
});

test("newKeysAndCsrs: keys and CSRs from one xargs; a run that fails reports openssl's error and the others stand", async () => {
  const work = await tempDir();
  const subjects = ['k1', 'k2', 'k3'].map((n) => leafProfile(node(n), domain));
  const items: KeyRequest[] = subjects.map((subject, i) => {
    const keyPath = path.join(work, `k${i}.key`);
    fs.writeFileSync(keyPath, '', { mode: 0o600 });
    return { keyPath, type: 'ec-p256', subject };
  });
  items.push({
    keyPath: path.join(work, 'no-such-dir', 'k.key'),
    type: 'ec-p256',
    subject: leafProfile(node('k4'), domain),
  });
  items.push({ keyPath: path.join(work, 'rsa.key'), type: 'rsa-3072', subject: leafProfile(node('k5'), domain) });
  fs.writeFileSync(items[4]!.keyPath, '', { mode: 0o600 });
  const made = await newKeysAndCsrs(items);
  for (const i of [0, 1, 2, 4]) {
    const m = made[i]!;
    assert.ok(!(m instanceof Error), String(m));
    const ok = m as Exclude<typeof m, Error>;
    assert.ok(csrCarriesProfile(ok.csrPem, items[i]!.subject), `item ${i} carries its profile`);
    assert.ok((await csrPublicKey(ok.csrPem)).equals(ok.publicKey), `item ${i}: the CSR is for the key in its file`);
    assert.is(fs.statSync(items[i]!.keyPath).mode & 0o777, 0o600);
  }
  assert.match(String(made[3]), /openssl req failed .*no-such-dir/s);
});

test.run();
