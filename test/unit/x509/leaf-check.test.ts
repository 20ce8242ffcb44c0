// lib/x509/cert.ts and leaf-check.ts, in process: what is read back from a certificate, the check
// that an issued certificate is exactly the request, and a peer leaf's identity under our rules.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCertDer, OID } from '../../../lib/x509/cert.ts';
import { checkIssued, structuralProblems, leafIdentity, type Expected } from '../../../lib/x509/leaf-check.ts';
import { meshDomain } from '../../../lib/core/identity.ts';
import { X509Certificate } from 'node:crypto';
import { buildCert, newKey, type LeafSpec } from './build.ts';

const mesh = meshDomain('mesh');
const ca = newKey();
const issuer = new X509Certificate(
  buildCert(ca.privateKey, ca.privateKey, { cns: ['Rivet Test CA'], ca: true, dns: [], uris: [], eku: [] }),
);
const leafKey = newKey();
const leaf = (spec: LeafSpec = {}) => parseCertDer(buildCert(leafKey.privateKey, ca.privateKey, spec));
const expected = (info: ReturnType<typeof leaf>): Expected => ({
  cn: 'ct1.mesh',
  dns: ['ct1.mesh'],
  uris: ['spiffe://mesh/node/ct1'],
  eku: [OID.serverAuth, OID.clientAuth],
  ca: false,
  issuer,
  publicKey: leafKey.publicKey,
  notBefore: info.notBefore,
  notAfter: info.notAfter,
});

test('parseCertDer reads every CN, the SANs, EKU, basicConstraints and extension criticality', () => {
  const info = leaf({ cns: ['a.mesh', 'b.mesh'], dns: ['a.mesh'], uris: ['spiffe://mesh/node/a'], serial: 0x00ff });
  assert.equal(info.subjectCNs, ['a.mesh', 'b.mesh']);
  assert.equal(info.issuerCNs, ['Rivet Test CA']);
  assert.equal([info.dns, info.uris, info.ips], [['a.mesh'], ['spiffe://mesh/node/a'], []]);
  assert.equal(info.eku, [OID.serverAuth, OID.clientAuth]);
  assert.is(info.serial, 'FF');
  assert.is(info.ca, false);
  assert.equal(
    info.extensions.filter((e) => e.critical).map((e) => e.oid),
    [OID.basicConstraints, OID.keyUsage],
  );
});

test('checkIssued accepts the certificate that was asked for', () => {
  const info = leaf();
  checkIssued(info, expected(info));
});

test('checkIssued names every difference: got and want', () => {
  const info = leaf({ dns: ['ct1.mesh', 'evil.example'], eku: [OID.clientAuth] });
  assert.throws(
    () => checkIssued(info, expected(info)),
    (err: Error) =>
      /issued certificate for ct1\.mesh does not match the request — /.test(err.message) &&
      /DNS SANs: got \[ct1\.mesh, evil\.example\], want \[ct1\.mesh\]/.test(err.message) &&
      /extendedKeyUsage: got \[1\.3\.6\.1\.5\.5\.7\.3\.2\], want \[1\.3\.6\.1\.5\.5\.7\.3\.1, 1\.3\.6\.1\.5\.5\.7\.3\.2\]/.test(
        err.message,
      ),
  );
  const other = newKey();
  const foreign = parseCertDer(buildCert(leafKey.privateKey, other.privateKey));
  assert.throws(() => checkIssued(foreign, expected(foreign)), /issuer: not signed by CN=Rivet Test CA/);
  const swapped = parseCertDer(buildCert(other.privateKey, ca.privateKey));
  assert.throws(() => checkIssued(swapped, expected(swapped)), /public key: differs from the request/);
  const smuggled = leaf({ extra: [{ oid: '2.5.29.30', value: Buffer.from('3000', 'hex'), critical: true }] });
  assert.throws(() => checkIssued(smuggled, expected(smuggled)), /extensions outside the profile: \[2\.5\.29\.30\]/);
});

test('structuralProblems: basicConstraints and keyUsage critical, SKI, and AKI on a leaf', () => {
  assert.equal(structuralProblems(leaf()), []);
  assert.equal(structuralProblems(leaf({ omit: [OID.keyUsage, OID.aki] })), [
    'keyUsage must be present and critical',
    'authorityKeyIdentifier is missing',
  ]);
});

test('leafIdentity: one CN in the grammar, the SPIFFE URI saying the same, EKU fitting the kind', () => {
  assert.equal(leafIdentity(leaf(), mesh), { kind: 'node', nodeId: 'ct1' });
  const agent = leaf({ cns: ['opus@ct1'], dns: [], uris: ['spiffe://mesh/agent/ct1/opus'], eku: [OID.clientAuth] });
  assert.equal(leafIdentity(agent, mesh), { kind: 'agent', agentId: 'opus', nodeId: 'ct1' });
  assert.throws(
    () => leafIdentity(leaf({ cns: ['ct1.mesh', 'ct2.mesh'] }), mesh),
    /certificate has 2 CNs — exactly one is allowed/,
  );
  assert.throws(() => leafIdentity(leaf({ ca: true }), mesh), /is a CA certificate, not a leaf/);
  assert.throws(() => leafIdentity(leaf({ cns: ['ct1.other'] }), mesh), /CN is outside the grammar/);
  assert.throws(
    () => leafIdentity(leaf({ uris: ['spiffe://mesh/node/ct2'] }), mesh),
    /CN ct1\.mesh and URI SAN disagree — got \[spiffe:\/\/mesh\/node\/ct2\], want \[spiffe:\/\/mesh\/node\/ct1\]/,
  );
  assert.throws(
    () => leafIdentity({ ...agent, eku: [OID.serverAuth, OID.clientAuth] }, mesh),
    /opus@ct1 has extendedKeyUsage .*, want \[1\.3\.6\.1\.5\.5\.7\.3\.2\]/,
  );
});

test.run();
