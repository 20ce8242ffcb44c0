// Keys and certificate signing requests. A CSR is trusted for exactly one thing: its public key,
// after openssl has checked the CSR's self-signature (proof that the sender holds the key).
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { openssl } from './openssl.ts';
import { renderFile } from './template.ts';
import { UsageError, OpensslError } from './errors.ts';
import { checkPublicKey, newKeyArgs, type KeyType } from './keys.ts';
import { withTempDir } from './signer.ts';
import { pemToDer } from './der.ts';

export const MAX_CSR_BYTES = 64 * 1024;

/**
 * Makes a new private key at `keyPath` (which the caller created empty with mode 0600, so the key
 * is never readable by others) and returns a CSR for it, in one openssl run.
 */
export async function newKeyAndCsr(keyPath: string, type: KeyType, cn: string): Promise<string> {
  return withTempDir(async (tmp) => {
    const conf = path.join(tmp, 'req.cnf');
    await fsp.writeFile(conf, renderFile('req.cnf', { cn }));
    return openssl(['req', '-new', '-config', conf, ...newKeyArgs(type), '-noenc', '-keyout', keyPath, '-subj', `/CN=${cn}`]);
  });
}

/** A CSR for an existing key (renewal re-uses the key; DESIGN §4.3). */
export async function csrForKey(keyPath: string, cn: string): Promise<string> {
  return withTempDir(async (tmp) => {
    const conf = path.join(tmp, 'req.cnf');
    await fsp.writeFile(conf, renderFile('req.cnf', { cn }));
    return openssl(['req', '-new', '-config', conf, '-key', keyPath, '-subj', `/CN=${cn}`]);
  });
}

/**
 * Parses a CSR someone sent: exactly one PEM request, a valid self-signature, an acceptable key.
 * Returns the public key; subject and requested extensions are deliberately ignored.
 */
export async function csrPublicKey(csrPem: string): Promise<KeyObject> {
  if (typeof csrPem !== 'string' || csrPem.length === 0) throw new UsageError('CSR is empty — send one PEM "CERTIFICATE REQUEST"', 'bad_csr');
  if (csrPem.length > MAX_CSR_BYTES) throw new UsageError(`CSR is ${csrPem.length} bytes — at most ${MAX_CSR_BYTES} are accepted`, 'bad_csr');
  const ders = pemToDer(csrPem, 'CERTIFICATE REQUEST');
  if (ders.length !== 1) throw new UsageError(`expected exactly one PEM "CERTIFICATE REQUEST", found ${ders.length}`, 'bad_csr');
  let pubPem: string;
  try {
    pubPem = await openssl(['req', '-inform', 'DER', '-verify', '-noout', '-pubkey'], { input: ders[0] });
  } catch (err) {
    if (err instanceof OpensslError) throw new UsageError(`CSR is malformed or its signature does not verify (${err.message.replace(/^openssl req failed \(exit \d+\): /, '')})`, 'bad_csr');
    throw err;
  }
  let key: KeyObject;
  try { key = createPublicKey(pubPem); } catch {
    throw new UsageError('CSR public key cannot be read', 'bad_csr');
  }
  checkPublicKey(key);
  return key;
}
