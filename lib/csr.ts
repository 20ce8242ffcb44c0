// Keys and certificate signing requests. A CSR is trusted for exactly one thing: its public key,
// after openssl has checked the CSR's self-signature (proof that the sender holds the key).
import fsp from 'node:fs/promises';
import path from 'node:path';
import crypto, { createPublicKey, type KeyObject } from 'node:crypto';
import { openssl } from './openssl.ts';
import { renderFile } from './template.ts';
import { UsageError, OpensslError } from './errors.ts';
import { checkPublicKey, newKeyArgs, type KeyType } from './keys.ts';
import { withTempDir } from './signer.ts';
import { children, content, oid, pemToDer, readTlv, SIG_DIGEST } from './der.ts';

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
  // What is checked here must be exactly what `openssl ca` later reads from the same text: base64
  // decoding skips stray bytes (a NUL inside the armour verified here, then failed in openssl as an
  // internal error), and bytes after the request would be ignored by one parser and not another.
  if (/-----BEGIN CERTIFICATE REQUEST-----(?![A-Za-z0-9+/=\s]*-----END)/.test(csrPem)) throw new UsageError('CSR PEM holds characters that are not base64 — send the request as openssl wrote it', 'bad_csr');
  if (!derIsOneTlv(ders[0]!)) throw new UsageError('CSR is not one DER-encoded request (truncated, or bytes after its end)', 'bad_csr');
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
  // OpenSSL 3.0's `req -verify` prints "verify failure" but still exits 0, so the proof of
  // possession is checked here, in-process, over the CertificationRequestInfo bytes.
  if (!csrSignatureValid(ders[0]!, key)) throw new UsageError('CSR signature does not verify — the request was altered or not signed by its own key', 'bad_csr');
  return key;
}

function derIsOneTlv(der: Buffer): boolean {
  try { return readTlv(der).bytes.length === der.length; } catch { return false; }
}

function csrSignatureValid(der: Buffer, key: KeyObject): boolean {
  try {
    const [info, alg, sig] = children(readTlv(der));
    const digest = SIG_DIGEST[oid(children(alg!)[0]!)];
    if (!info || !sig || sig.tag !== 0x03 || !digest) return false;
    return crypto.verify(digest, info.bytes, key, content(sig).subarray(1));
  } catch { return false; }
}
