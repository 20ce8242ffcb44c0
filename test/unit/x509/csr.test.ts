// lib/sign/csr.ts's reading of a CSR someone sent, in process: one PEM request, one DER value, a
// self-signature that verifies, a key we accept — each refusal a bad_csr usage error saying which.
// CSRs are forged byte by byte (test/hostile/forge.ts); the corpus runs them end to end too.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { csrPublicKey, csrProfileMismatch, MAX_CSR_BYTES } from '../../../lib/sign/csr.ts';
import { UsageError } from '../../../lib/core/errors.ts';
import { forgeCsrDer, toPem } from '../../hostile/forge.ts';

async function refused(pem: string, message: RegExp, code = 'bad_csr'): Promise<void> {
  try {
    await csrPublicKey(pem);
  } catch (err) {
    assert.ok(
      err instanceof UsageError && err.code === code,
      `a ${code} usage error: ${String(err)} (${(err as UsageError).code})`,
    );
    assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable(`accepted; wanted ${message}`);
}

test('a well-formed request gives its public key', async () => {
  const key = await csrPublicKey(toPem(await forgeCsrDer({ cns: ['ct1.mesh'] })));
  assert.is(key.asymmetricKeyType, 'ec');
});

test('refuses empty, oversized, doubled and non-base64 text', async () => {
  const pem = toPem(await forgeCsrDer({ cns: ['ct1.mesh'] }));
  await refused('', /CSR is empty/);
  await refused(`${'x'.repeat(MAX_CSR_BYTES)}\n${pem}`, /at most 65536 are accepted/);
  await refused(pem + pem, /expected exactly one PEM "CERTIFICATE REQUEST", found 2/);
  await refused(
    pem.replace('-----BEGIN CERTIFICATE REQUEST-----\n', '-----BEGIN CERTIFICATE REQUEST-----\n\0'),
    /not base64/,
  );
});

test('refuses a DER with bytes after its end, a broken outline and a signature that does not verify', async () => {
  const der = await forgeCsrDer({ cns: ['ct1.mesh'] });
  await refused(toPem(Buffer.concat([der, Buffer.from('garbage')])), /not one DER-encoded request/);
  await refused(toPem(Buffer.from('3003020100', 'hex')), /not a PKCS#10 request/);
  await refused(toPem(await forgeCsrDer({ cns: ['ct1.mesh'], badSignature: true })), /CSR signature does not verify/);
});

test('refuses keys outside the accepted types', async () => {
  await refused(
    toPem(await forgeCsrDer({ cns: ['ct1.mesh'], key: 'rsa1024' })),
    /RSA key of 1024 bits is not accepted — use 2048 to 4096 bits/,
    'bad_key',
  );
  await refused(
    toPem(await forgeCsrDer({ cns: ['ct1.mesh'], key: 'secp256k1' })),
    /EC key on curve "secp256k1" is not accepted — use P-256 or P-384/,
    'bad_key',
  );
  await refused(
    toPem(await forgeCsrDer({ cns: ['ct1.mesh'], key: 'ed25519' })),
    /key type "ed25519" is not accepted/,
    'bad_key',
  );
});

test('csrProfileMismatch: only the exact leaf subject and SAN count, and it says what differs', async () => {
  const want = { cn: 'ct1.mesh', dns: ['ct1.mesh'], uris: ['spiffe://mesh/node/ct1'] };
  assert.match(
    csrProfileMismatch(toPem(await forgeCsrDer({ cns: ['ct1.mesh'] })), want) ?? 'matched',
    /attributes, want one extension request/,
  );
  assert.match(
    csrProfileMismatch(toPem(await forgeCsrDer({ cns: ['ct1.mesh'], sans: ['DNS:ct1.mesh'] })), want) ?? 'matched',
    /subjectAltName differs from the profile's/,
  );
  assert.match(
    csrProfileMismatch(toPem(await forgeCsrDer({ cns: ['ct2.mesh'] })), want) ?? 'matched',
    /subject is not exactly CN=ct1\.mesh/,
  );
  assert.is(csrProfileMismatch('not a csr', want), 'not one well-formed PKCS#10 request');
});

test.run();
