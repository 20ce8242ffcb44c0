// lib/x509/der.ts and crl.ts: the DER reader refuses what is not DER, and CRLs are read in process
// (receivers and handshakes must not pay an openssl start) with their signature checked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { readTlv, children, derToPem, pemToDer } from '../../../lib/x509/der.ts';
import { parseCrlDer, parseCrlBundle, splitCrlBundle, crlSignedBy, isRevoked } from '../../../lib/x509/crl.ts';
import { RivetError } from '../../../lib/core/errors.ts';
import { buildCert, buildCrl, newKey } from './build.ts';

const ca = newKey();
const caCert = new X509Certificate(
  buildCert(ca.privateKey, ca.privateKey, { cns: ['Rivet Test CA'], ca: true, dns: [], uris: [], eku: [] }),
);
const day = (n: number) => new Date(Date.UTC(2026, 0, 1 + n));

test('readTlv refuses a truncated header, an overlong length, a value past the end and multi-byte tags', () => {
  const der = (hex: string) => Buffer.from(hex, 'hex');
  assert.throws(() => readTlv(der('30')), /DER: truncated header/);
  assert.throws(() => readTlv(der('3085ffffffffff')), /DER: bad length/);
  assert.throws(() => readTlv(der('3080')), /DER: bad length/, 'indefinite length (BER) is not DER');
  assert.throws(() => readTlv(der('3084ffffffff00')), /DER: value runs past the end/);
  assert.throws(() => readTlv(der('1f0100')), /multi-byte tags/);
  const seq = readTlv(der('3006020101020102'));
  assert.equal(
    children(seq).map((c) => c.bytes.toString('hex')),
    ['020101', '020102'],
  );
});

test('PEM round trip keeps the DER and reads only blocks of the asked label', () => {
  const der = buildCrl(ca.privateKey);
  const pem = derToPem(der, 'X509 CRL');
  assert.match(pem, /^-----BEGIN X509 CRL-----\n[A-Za-z0-9+/=\n]+-----END X509 CRL-----\n$/);
  assert.equal(pemToDer(`${derToPem(Buffer.from('3000', 'hex'), 'CERTIFICATE')}${pem}`, 'X509 CRL'), [der]);
});

test('parseCrlDer reads issuer, times, revoked serials and crlNumber; the signature checks against the issuer only', () => {
  const der = buildCrl(ca.privateKey, {
    thisUpdate: day(0),
    nextUpdate: day(7),
    crlNumber: 300,
    revoked: [
      { serial: 0x0a1b, date: day(-1) },
      { serial: 0x80, date: day(-2) },
    ],
  });
  const crl = parseCrlDer(der);
  assert.equal(crl.issuerCNs, ['Rivet Test CA']);
  assert.is(crl.thisUpdate.toISOString(), day(0).toISOString());
  assert.is(crl.nextUpdate?.toISOString(), day(7).toISOString());
  assert.is(crl.crlNumber, 300n);
  assert.equal(
    crl.revoked.map((r) => r.serial),
    ['0A1B', '80'],
    'whole bytes as openssl writes index.txt; the sign byte 00 of 0x80 dropped',
  );
  assert.ok(isRevoked([crl], '0a1b'));
  assert.not.ok(isRevoked([crl], '1234'));
  assert.ok(crlSignedBy(crl, caCert));
  const other = newKey();
  assert.not.ok(crlSignedBy(parseCrlDer(buildCrl(other.privateKey)), caCert), 'same issuer name, another key');
});

test('a CRL bundle splits into its CRLs in order; junk is a bad_crl error naming the problem', () => {
  const a = buildCrl(ca.privateKey, { crlNumber: 1 });
  const b = buildCrl(ca.privateKey, { crlNumber: 2, issuerCn: 'Rivet Root CA' });
  const bundle = `${derToPem(a, 'X509 CRL')}${derToPem(b, 'X509 CRL')}`;
  assert.equal(
    parseCrlBundle(bundle).map((c) => [c.issuerCNs[0], c.crlNumber]),
    [
      ['Rivet Test CA', 1n],
      ['Rivet Root CA', 2n],
    ],
  );
  assert.is(splitCrlBundle(bundle).length, 2);
  for (const junk of [Buffer.from('hello'), a.subarray(0, a.length - 5), Buffer.from('3000', 'hex')]) {
    assert.throws(
      () => parseCrlDer(junk),
      (err: Error) => err instanceof RivetError && err.code === 'bad_crl' && /^not a valid CRL: /.test(err.message),
    );
  }
});

test.run();
