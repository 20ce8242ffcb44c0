// The node directory (DESIGN §2): RIVET_NODE_DIR holds node.key/node.crt, rivet-ca.crt, crl.pem,
// agents/<id>.key|crt and node.json. Every file lands by temp file + fsync + rename, keys are 0600
// from creation, directories 0700, and every run first sweeps temp files a killed run left behind.
// One lock per node dir serialises provision-ct runs (enroll, renew, the timer).
import fsp from 'node:fs/promises';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { RivetError, show } from '../core/errors.ts';
import {
  commitRename,
  createExclusive,
  ensureDir,
  KEY_MODE,
  PUBLIC_MODE,
  readText,
  removeStaleTemps,
  tempPathFor,
  writeAtomic,
} from '../sys/files.ts';
import { withLock } from '../sys/lock.ts';
import { checkOwnership } from '../sys/ownership.ts';
import { newKeyAndCsr, type CsrSubject } from '../sign/csr.ts';
import { parseCertsPem, publicKeyDer, type CertInfo } from '../x509/cert.ts';
import { publicKeyOfPrivatePem } from '../core/keys.ts';
import { leafIdentity } from '../x509/leaf-check.ts';
import { meshTlsFiles } from '../mesh/tls.ts';
import { agentId, commonName, type AgentId, type Identity, type MeshDomain } from '../core/identity.ts';

export type NodeFiles = ReturnType<typeof meshTlsFiles> & { dir: string; agents: string; nextKey: string };

export function nodeFiles(dir: string): NodeFiles {
  const abs = path.resolve(dir);
  return { ...meshTlsFiles(abs), dir: abs, agents: path.join(abs, 'agents'), nextKey: path.join(abs, 'node.key.next') };
}

export const agentFiles = (dir: string, agent: AgentId) => meshTlsFiles(path.resolve(dir), agent);

/** Runs `fn` holding the node dir's lock, after creating the dirs (0700) and removing dead runs' temp files. */
export async function withNodeDir<T>(dir: string, what: string, fn: (f: NodeFiles) => Promise<T>): Promise<T> {
  const f = nodeFiles(dir);
  checkOwnership(f.dir, 'node directory');
  await ensureDir(f.dir);
  return withLock(
    path.join(f.dir, '.provision.lock'),
    what,
    async () => {
      await ensureDir(f.agents);
      await removeStaleTemps(f.dir);
      await removeStaleTemps(f.agents);
      return fn(f);
    },
    { timeoutMs: 120_000, onWait: (holder) => process.stderr.write(`provision-ct: waiting for ${holder}\n`) },
  );
}

/**
 * A new private key at `keyPath`, made in a 0600 temp file and renamed into place only once
 * complete, with a CSR saying `subject`. A kill at any instant leaves either no key or a whole one.
 */
export async function newKey(keyPath: string, subject: CsrSubject): Promise<string> {
  const tmp = tempPathFor(keyPath);
  await createExclusive(tmp, KEY_MODE);
  try {
    const { csrPem: csr } = await newKeyAndCsr(tmp, 'ec-p256', subject);
    const fh = await fsp.open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await commitRename(tmp, keyPath);
    return csr;
  } finally {
    await fsp.rm(tmp, { force: true });
  }
}

/** The public key (SPKI DER) of a private key file, or undefined when it is missing or unreadable. */
export async function keySpki(keyPath: string): Promise<Buffer | undefined> {
  const pem = await readText(keyPath);
  if (!pem) return undefined;
  try {
    return publicKeyDer(publicKeyOfPrivatePem(pem));
  } catch {
    return undefined;
  }
}

export type Installed = { info: CertInfo; id: Identity; keyMatches: boolean };

/** What a certificate file holds, read back; undefined when it is missing or not ours. */
export async function readInstalled(
  certPath: string,
  keyPath: string,
  domain: MeshDomain,
): Promise<Installed | undefined> {
  const pem = await readText(certPath);
  if (!pem) return undefined;
  try {
    const [info] = parseCertsPem(pem);
    if (!info) return undefined;
    const id = leafIdentity(info, domain);
    const spki = await keySpki(keyPath);
    return { info, id, keyMatches: spki !== undefined && spki.equals(publicKeyDer(info.x509)) };
  } catch {
    return undefined;
  }
}

/**
 * Checks a certificate the service returned before it is installed: it names `id`, certifies our
 * key, was issued by a CA of the pinned chain, and is inside its validity period.
 */
export function checkReceived(
  certPem: string,
  id: Identity,
  domain: MeshDomain,
  spki: Buffer,
  chainPem: string,
): CertInfo {
  let certs: CertInfo[];
  try {
    certs = parseCertsPem(certPem);
  } catch (err) {
    throw new RivetError(`the datahub returned an unreadable certificate: ${(err as Error).message}`, 'bad_reply');
  }
  const leaf = certs[0];
  const want = commonName(id, domain);
  if (!leaf) throw new RivetError('the datahub returned no certificate', 'bad_reply');
  if (leaf.subjectCNs.join(',') !== want)
    throw new RivetError(
      `the datahub returned a certificate for ${show(leaf.subjectCNs.join(','))}, not ${want}`,
      'bad_reply',
    );
  leafIdentity(leaf, domain);
  if (!publicKeyDer(leaf.x509).equals(spki))
    throw new RivetError(`the certificate returned for ${want} does not certify this node's key`, 'bad_reply');
  const cas = parseCertsPem(chainPem).map((c) => c.x509);
  if (!cas.some((ca: X509Certificate) => leaf.x509.checkIssued(ca) && leaf.x509.verify(ca.publicKey))) {
    throw new RivetError(`the certificate returned for ${want} is not signed by a CA of the pinned chain`, 'bad_reply');
  }
  const now = Date.now();
  if (leaf.notBefore.getTime() > now + 5 * 60_000 || leaf.notAfter.getTime() <= now)
    throw new RivetError(
      `the certificate returned for ${want} is not valid now (${leaf.notBefore.toISOString()} – ${leaf.notAfter.toISOString()}) — check this node's clock`,
      'bad_reply',
    );
  return leaf;
}

export const writePublic = (file: string, text: string) => writeAtomic(file, text, PUBLIC_MODE);

export async function listAgents(f: NodeFiles): Promise<AgentId[]> {
  let names: string[] = [];
  try {
    names = await fsp.readdir(f.agents);
  } catch {
    return [];
  }
  // A stray file (agents/Foo.crt, a backup) is not an agent: only names inside the grammar count.
  return names
    .filter((n) => n.endsWith('.crt') && !n.startsWith('.'))
    .map((n) => n.slice(0, -4))
    .filter((n) => {
      try {
        agentId(n);
        return true;
      } catch {
        return false;
      }
    })
    .map((n) => n as AgentId)
    .sort();
}
