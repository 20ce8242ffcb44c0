// `verify` (DESIGN §4.5): a certificate against the root, the intermediates, the CRL bundle and our
// profile rules. openssl does the path and CRL work; the profile rules are ours.
import fsp from 'node:fs/promises';
import type { Ca } from '../ca/handle.ts';
import { openssl } from '../sys/openssl.ts';
import { OpensslError, UsageError, show } from '../core/errors.ts';
import { parseCertsPem } from '../x509/cert.ts';
import { leafIdentity, structuralProblems } from '../x509/leaf-check.ts';
import type { Identity } from '../core/identity.ts';
import { withTempDir } from '../sign/signer.ts';
import path from 'node:path';

export type VerifyResult = { ok: boolean; cn?: string; serial?: string; identity?: Identity; problems: string[] };

export async function verifyCert(
  ca: Ca,
  certFile: string,
  opts: { serverName?: string; client?: boolean } = {},
): Promise<VerifyResult> {
  let pem: string;
  try {
    pem = await fsp.readFile(certFile, 'utf8');
  } catch {
    throw new UsageError(`cannot read certificate file ${show(certFile)}`);
  }
  const certs = parseCertsPem(pem);
  const leaf = certs[0];
  if (!leaf) throw new UsageError(`${show(certFile)} holds no PEM certificate`);
  const problems: string[] = [...structuralProblems(leaf)];
  let identity: Identity | undefined;
  try {
    identity = leafIdentity(leaf, ca.domain);
  } catch (err) {
    problems.push((err as Error).message);
  }
  if (opts.serverName) {
    if (!leaf.dns.includes(opts.serverName) && !leaf.ips.includes(opts.serverName))
      problems.push(`name ${opts.serverName} is not among the SANs [${[...leaf.dns, ...leaf.ips].join(', ')}]`);
  }
  const purpose = opts.serverName ? 'sslserver' : opts.client ? 'sslclient' : undefined;
  await withTempDir(async (tmp) => {
    const leafFile = path.join(tmp, 'leaf.pem');
    await fsp.writeFile(leafFile, leaf.x509.toString());
    try {
      await openssl([
        'verify',
        '-x509_strict',
        '-crl_check_all',
        '-CAfile',
        ca.store.root().cert,
        '-untrusted',
        ca.store.chainFile,
        '-CRLfile',
        ca.store.crlBundle,
        ...(purpose ? ['-purpose', purpose] : []),
        leafFile,
      ]);
    } catch (err) {
      if (!(err instanceof OpensslError)) throw err;
      const reason = /error \d+ at \d+ depth lookup: (.*)/.exec(err.stderr)?.[1] ?? err.stderr.trim().split('\n').pop();
      problems.push(`openssl verify: ${reason}`);
    }
  });
  return { ok: problems.length === 0, cn: leaf.subjectCNs[0], serial: leaf.serial, identity, problems };
}
