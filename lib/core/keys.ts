// Key types and the openssl arguments that make them (DESIGN §3: EC P-256 unless asked).
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { UsageError, show } from './errors.ts';

export const KEY_TYPES = ['ec-p256', 'ec-p384', 'rsa-3072', 'rsa-4096'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export function keyType(value: string | undefined): KeyType {
  const v = value ?? 'ec-p256';
  if ((KEY_TYPES as readonly string[]).includes(v)) return v as KeyType;
  throw new UsageError(`key type ${show(v)} is not one of ${KEY_TYPES.join(', ')}`);
}

/** Arguments for `openssl req -newkey …` / `genpkey`. */
export function newKeyArgs(type: KeyType): string[] {
  switch (type) {
    case 'ec-p256':
      return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
    case 'ec-p384':
      return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'];
    case 'rsa-3072':
      return ['-newkey', 'rsa:3072'];
    case 'rsa-4096':
      return ['-newkey', 'rsa:4096'];
  }
}

export function genpkeyArgs(type: KeyType): string[] {
  switch (type) {
    case 'ec-p256':
      return ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
    case 'ec-p384':
      return ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'];
    case 'rsa-3072':
      return ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072'];
    case 'rsa-4096':
      return ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:4096'];
  }
}

/** Digest to sign with: SHA-384 for P-384 keys (matched strength), SHA-256 otherwise. */
export function digestFor(type: KeyType): 'sha256' | 'sha384' {
  return type === 'ec-p384' ? 'sha384' : 'sha256';
}

/** The digest to sign a request for `key` with, by its key (a CSR does not say which type was asked for). */
export function digestForKey(key: KeyObject): 'sha256' | 'sha384' {
  return digestFor(key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'ec-p384' : 'ec-p256');
}

/**
 * What a presented public key may be: P-256/P-384, or RSA 2048–4096 bits. Anything else (tiny RSA,
 * a 16k-bit key that makes every handshake slow, an exotic curve) is refused with the reason.
 */
export function checkPublicKey(key: KeyObject): void {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (d.namedCurve === 'prime256v1' || d.namedCurve === 'secp384r1') return;
    throw new UsageError(
      `EC key on curve ${show(d.namedCurve ?? 'unknown')} is not accepted — use P-256 or P-384`,
      'bad_key',
    );
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = d.modulusLength ?? 0;
    if (bits >= 2048 && bits <= 4096) return;
    throw new UsageError(`RSA key of ${bits} bits is not accepted — use 2048 to 4096 bits`, 'bad_key');
  }
  throw new UsageError(
    `key type ${show(key.asymmetricKeyType ?? 'unknown')} is not accepted — use EC P-256/P-384 or RSA`,
    'bad_key',
  );
}

export function publicKeyOfPrivatePem(pem: string, passphrase?: string): KeyObject {
  return createPublicKey(createPrivateKey({ key: pem, passphrase }));
}
