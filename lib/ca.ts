// The handle every CA operation takes: where the CA lives, which mesh domain it serves, and how
// to unlock its root key when that key is encrypted.
import { X509Certificate } from 'node:crypto';
import fsp from 'node:fs/promises';
import { CaStore, type Issuer } from './store.ts';
import type { MeshDomain } from './identity.ts';
import type { IssuerSecret } from './signer.ts';
import { RivetError } from './errors.ts';
import { refreshCrlsLocked } from './publish.ts';
import { writeAtomic } from './files.ts';

export type Ca = {
  store: CaStore;
  domain: MeshDomain;
  /** Passphrase of an encrypted root key (read from a file by the CLI, never argv). */
  root?: IssuerSecret;
  /** Where human-readable progress goes (stderr in the CLI, nowhere in the service). */
  log?: (line: string) => void;
};

export function openCa(dir: string, domain: MeshDomain, extra: Partial<Ca> = {}): Ca {
  const ca: Ca = { store: new CaStore(dir), domain, ...extra };
  ca.store.repairCrls = async () => { await refreshCrlsLocked(ca, { force: true }); };
  return ca;
}

/**
 * Runs a change to the database that the CRLs must then reflect. A marker file spans both, so a
 * run killed in between leaves the marker, and the next change re-signs the CRLs first.
 */
export async function withCrlPending<T>(ca: Ca, fn: () => Promise<T>): Promise<T> {
  await writeAtomic(ca.store.crlPendingFile, `${process.pid}\n`, 0o600);
  const result = await fn();
  await fsp.rm(ca.store.crlPendingFile, { force: true });
  return result;
}

export async function issuerCert(issuer: Issuer): Promise<X509Certificate> {
  try { return new X509Certificate(await fsp.readFile(issuer.cert)); } catch (err) {
    throw new RivetError(`cannot read CA certificate ${issuer.cert}: ${(err as Error).message}`, 'no_ca');
  }
}
