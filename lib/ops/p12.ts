// PKCS#12 export for clients that want one file (browsers, Claude Desktop, Cursor). The passphrase
// reaches openssl through its environment (`-passout env:`), never through argv.
import type { Ca } from '../ca/handle.ts';
import { fileStem, parseIdentity } from '../core/identity.ts';
import { opensslBytes } from '../sys/openssl.ts';
import { KEY_MODE, exists, writeAtomic } from '../sys/files.ts';
import { UsageError, RivetError, show } from '../core/errors.ts';
import { audit } from '../sys/audit.ts';
import { transaction } from '../sign/transaction.ts';

export function checkP12Passphrase(passphrase: string): string {
  const p = passphrase.replace(/\r?\n$/, '');
  if (p.length < 8) throw new UsageError('PKCS#12 passphrase must be at least 8 characters');
  if (p.includes('\n') || p.includes('\0'))
    throw new UsageError('PKCS#12 passphrase must be one line without NUL bytes');
  return p;
}

export async function exportP12(ca: Ca, name: string, passphrase: string, out?: string): Promise<string> {
  const id = parseIdentity(name, ca.domain);
  const pass = checkP12Passphrase(passphrase);
  const stem = fileStem(id);
  const cert = ca.store.issued(stem, 'crt');
  const key = ca.store.issued(stem, 'key');
  if (!(await exists(cert)) || !(await exists(key)))
    throw new UsageError(
      `no certificate and key for ${show(stem)} in ${ca.store.issuedDir} — issue one first`,
      'not_found',
    );
  const target = out ?? ca.store.issued(stem, 'p12');
  let der: Buffer;
  try {
    der = await opensslBytes(
      ['pkcs12', '-export', '-in', cert, '-inkey', key, '-name', stem, '-passout', 'env:RIVET_P12_PASS'],
      { env: { RIVET_P12_PASS: pass } },
    );
  } catch (err) {
    throw new RivetError(`cannot build PKCS#12 for ${stem}: ${(err as Error).message}`, 'p12', { cause: err });
  }
  await transaction(ca, `export-p12 ${stem}`, async () => {
    await writeAtomic(target, der, KEY_MODE); // it holds the private key
    await audit(ca.store.auditLog, { event: 'export-p12', result: 'ok', cn: stem });
  });
  return target;
}
