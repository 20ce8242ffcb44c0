// The handle every CA operation takes: where the CA lives, which mesh domain it serves, and how
// to unlock its root key when that key is encrypted.
import { X509Certificate } from 'node:crypto';
import fsp from 'node:fs/promises';
import { CaStore, type Issuer } from './store.ts';
import type { MeshDomain } from '../core/identity.ts';
import { RivetError } from '../core/errors.ts';

/** How openssl unlocks an issuer key that is encrypted (the token PIN for a PKCS#11 root). */
export type IssuerSecret = { passphrase?: string };

export type Ca = {
  store: CaStore;
  domain: MeshDomain;
  /** Passphrase of an encrypted root key (read from a file by the CLI, never argv). */
  root?: IssuerSecret;
  /** Where human-readable progress goes (stderr in the CLI, nowhere in the service). */
  log?: (line: string) => void;
};

export function openCa(dir: string, domain: MeshDomain, extra: Partial<Ca> = {}): Ca {
  return { store: new CaStore(dir), domain, ...extra };
}

export async function issuerCert(issuer: Issuer): Promise<X509Certificate> {
  try {
    return new X509Certificate(await fsp.readFile(issuer.cert));
  } catch (err) {
    throw new RivetError(`cannot read CA certificate ${issuer.cert}: ${(err as Error).message}`, 'no_ca');
  }
}
