// The CA host's own node dir (`rivet-ca host`, DESIGN §6) takes the CA's chain and CRL bundle
// straight from the CA directory, through the same install path as every push and pull (so its
// marks and chain rules hold there too). Every push does this first: the push authenticates with
// that node dir and verifies the nodes with its CRLs, so a stale one there (after a rotation, or a
// week with no mesh server on the host) would fail every push; and the CA host counts as a node
// the revocation reached.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Ca } from '../ca/handle.ts';
import type { NodeId } from '../core/identity.ts';
import { parseCertPem } from '../x509/cert.ts';
import { readText, writeAtomic, PUBLIC_MODE } from '../sys/files.ts';
import { meshTlsFiles } from '../mesh/tls.ts';
import { installCrlBundle, type InstallResult } from './install.ts';
import { recordedCaHost } from './push-sender.ts';

/** Installs the CA's current chain and bundle into `nodeDir` (the chain as-is the first time). */
export async function installCaTrust(ca: Ca, nodeDir: string): Promise<InstallResult> {
  const files = meshTlsFiles(path.resolve(nodeDir));
  const chain = await fsp.readFile(ca.store.chainFile, 'utf8');
  if ((await readText(files.ca)) === undefined) await writeAtomic(files.ca, chain, PUBLIC_MODE);
  return installCrlBundle(nodeDir, await fsp.readFile(ca.store.crlBundle, 'utf8'), { chain, source: 'install' });
}

/** The node id of `nodeDir` when it is this CA's host identity (node.json names itself as CA host). */
export async function caHostOf(ca: Ca, nodeDir: string): Promise<NodeId | undefined> {
  const caHost = recordedCaHost(nodeDir);
  const cert = caHost ? await readText(meshTlsFiles(path.resolve(nodeDir)).cert) : undefined;
  if (!caHost || !cert) return undefined;
  try {
    return parseCertPem(cert).subjectCNs[0] === `${caHost}.${ca.domain}` ? caHost : undefined;
  } catch {
    return undefined;
  }
}
