// The service's TLS material: its own node certificate, the chain clients are verified against,
// and the CRL bundle. Reloaded into the running server when any of them changes on disk (a CLI
// revocation, a renewed server cert) by the mesh's one reload path (lib/mesh/watch.ts): new
// handshakes use it, and open connections of a client that no longer verifies are cut.
import fsp from 'node:fs/promises';
import tls from 'node:tls';
import type { Ca } from '../ca/handle.ts';
import { splitCrlBundle } from '../x509/crl.ts';
import { RivetError } from '../core/errors.ts';
import { secureContextOptions, type TlsMaterial } from '../mesh/tls.ts';

export type TlsFiles = { cert: string; key: string; chain: string; crl: string };

export function tlsFiles(ca: Ca, cert: string, key: string): TlsFiles {
  return { cert, key, chain: ca.store.chainFile, crl: ca.store.crlBundle };
}

async function read(file: string, what: string): Promise<Buffer> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    throw new RivetError(
      `cannot read the ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}) — ${what === 'server key' || what === 'server certificate' ? 'give --tls-cert/--tls-key or set RIVET_NODE_DIR' : 'is RIVET_CA_DIR right?'}`,
      'tls_files',
    );
  }
}

/**
 * Reads every file and checks they make a context. The CRL bundle goes in as an array: Node reads
 * only the first CRL of a PEM, and without the root's CRL every verification fails (DESIGN §5).
 */
export async function loadTlsMaterial(files: TlsFiles): Promise<TlsMaterial> {
  const [cert, key, ca, crl] = await Promise.all([
    read(files.cert, 'server certificate'),
    read(files.key, 'server key'),
    read(files.chain, 'CA chain'),
    read(files.crl, 'CRL bundle'),
  ]);
  const material: TlsMaterial = { cert, key, ca, crl: splitCrlBundle(crl.toString('utf8')).map((c) => Buffer.from(c)) };
  try {
    tls.createSecureContext(secureContextOptions(material));
  } catch (err) {
    throw new RivetError(
      `TLS material is unusable (${(err as Error).message}) — check that ${files.key} matches ${files.cert}`,
      'tls_files',
    );
  }
  return material;
}
