// mTLS material and options for the mesh's servers and clients (DESIGN §7). Everything that
// decides "is this peer trusted" is fixed here so a caller cannot loosen it by accident: client
// certs are required and verified, the whole chain is checked against the CRL bundle, TLS 1.3 only.
// Length (over 250 lines once formatted): every trust decision of a mesh connection stays in one
// file on purpose, so a reviewer sees all of it at once; reload, gate and cutting live beside it.
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { SecureContextOptions, TlsOptions, ConnectionOptions, PeerCertificate } from 'node:tls';
import { RivetError, UsageError, show } from '../core/errors.ts';
import { parseCertDer } from '../x509/cert.ts';
import { leafIdentity } from '../x509/leaf-check.ts';
import { splitCrlBundle, parseCrlBundle } from '../x509/crl.ts';
import { readPkcs12 } from '../x509/pkcs12.ts';
import { agentId as checkAgentId, meshDomain, type MeshDomain } from '../core/identity.ts';
import { loadEnv } from '../sys/config.ts';
import { checkOwnership } from '../sys/ownership.ts';

/** A key, the certificate presented with it, the chain peers are verified with, and the CRLs. */
export type TlsMaterial = {
  key: Buffer;
  cert: Buffer;
  ca: Buffer;
  /** The CRL bundle split into one PEM per CRL: Node's tls reads only the first CRL of a PEM. */
  crl: Buffer[];
};

/** What a node (or one of its agents) presents and verifies with, read from a node dir (DESIGN §2). */
export type MeshTls = TlsMaterial & {
  /** Resolved once here: peerIdentity and the watchers use it, no per-request config read. */
  domain: MeshDomain;
  dir: string;
  /** Set when loaded for an agent (agents/<agent>.{crt,key}): what a following client reloads. */
  agent?: string;
  /** Set when loaded from given files (cert + key, p12, ca, crl): followers reload and watch these. */
  files?: IdentityFileOptions;
};

export type LoadMeshTlsOptions = {
  /** Node dir, default RIVET_NODE_DIR or /etc/rivetos. */
  dir?: string;
  /** Load agents/<agent>.{crt,key} instead of the node's own cert. */
  agent?: string;
  /** Mesh DNS domain, default RIVET_MESH_DOMAIN or `mesh`. */
  domain?: string;
} & IdentityFileOptions;

/**
 * An identity held outside a node dir (a user's `phil@external`): a certificate and key file, or
 * one PKCS#12 file with the file that holds its passphrase (never the passphrase itself). The CA
 * chain and CRL bundle still come from `dir` unless given.
 */
export type IdentityFileOptions = {
  cert?: string;
  key?: string;
  p12?: string;
  passphraseFile?: string;
  /** The chain to verify peers with, default `<dir>/rivet-ca.crt`. */
  ca?: string;
  /** The CRL bundle, default `<dir>/crl.pem`. */
  crl?: string;
};

/** The files of a node dir that make up its TLS identity; the watcher reloads when one changes. */
export function meshTlsFiles(dir: string, agent?: string): { key: string; cert: string; ca: string; crl: string } {
  const own =
    agent === undefined
      ? { key: path.join(dir, 'node.key'), cert: path.join(dir, 'node.crt') }
      : { key: path.join(dir, 'agents', `${checkAgentId(agent)}.key`), cert: path.join(dir, 'agents', `${agent}.crt`) };
  return { ...own, ca: path.join(dir, 'rivet-ca.crt'), crl: path.join(dir, 'crl.pem') };
}

export function defaultDomain(domain?: string): MeshDomain {
  return domain === undefined ? configuredDomain() : meshDomain(domain);
}

let processDomain: MeshDomain | undefined;
/** RIVET_MESH_DOMAIN (environment or .env), default `mesh`: read once per process. */
export function configuredDomain(): MeshDomain {
  return (processDomain ??= meshDomain(loadEnv().RIVET_MESH_DOMAIN || 'mesh'));
}

function read(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new RivetError(
      `cannot read ${what} ${show(file)} (${code ?? 'error'}) — enroll this node with \`provision-ct enroll\` or fix RIVET_NODE_DIR`,
      'no_tls',
    );
  }
}

/** Reads a node dir; throws naming the missing or broken file. Validates before anything listens. */
export function loadMeshTls(opts: LoadMeshTlsOptions = {}): MeshTls {
  const dir = path.resolve(opts.dir ?? (loadEnv().RIVET_NODE_DIR || '/etc/rivetos'));
  const domain = defaultDomain(opts.domain);
  const files = {
    ...meshTlsFiles(dir, opts.agent),
    ...(opts.ca ? { ca: path.resolve(opts.ca) } : {}),
    ...(opts.crl ? { crl: path.resolve(opts.crl) } : {}),
  };
  checkOwnership(dir, 'node directory'); // another user's dir could hold their CA as rivet-ca.crt
  const { key, cert } = ownIdentity(opts, files);
  const ca = read(files.ca, 'CA chain');
  const crlPem = read(files.crl, 'CRL bundle').toString('utf8');
  let crls: string[];
  try {
    crls = splitCrlBundle(crlPem);
    parseCrlBundle(crlPem);
  } catch (err) {
    throw new RivetError(
      `CRL bundle ${show(files.crl)} is not valid: ${(err as Error).message} — fetch a fresh one with \`provision-ct fetch-crl\``,
      'bad_crl',
    );
  }
  if (crls.length === 0)
    throw new RivetError(
      `CRL bundle ${show(files.crl)} holds no CRL — fetch a fresh one with \`provision-ct fetch-crl\``,
      'bad_crl',
    );
  const material: MeshTls = {
    key,
    cert,
    ca,
    crl: crls.map((c) => Buffer.from(c)),
    domain,
    dir,
    ...(opts.agent === undefined ? {} : { agent: opts.agent }),
    ...identityFilesOf(opts),
  };
  try {
    tls.createSecureContext(secureContextOptions(material));
  } catch (err) {
    throw new RivetError(
      `TLS material in ${show(dir)} does not load: ${(err as Error).message} — does ${path.basename(files.key)} belong to ${path.basename(files.cert)}?`,
      'bad_tls',
    );
  }
  return material;
}

/** The given files, absolute, so that a follower (watch.ts) reloads this identity and not the node's. */
function identityFilesOf(opts: IdentityFileOptions): { files?: IdentityFileOptions } {
  const given = Object.entries({
    cert: opts.cert,
    key: opts.key,
    p12: opts.p12,
    passphraseFile: opts.passphraseFile,
    ca: opts.ca,
    crl: opts.crl,
  }).filter(([, v]) => v !== undefined);
  return given.length ? { files: Object.fromEntries(given.map(([k, v]) => [k, path.resolve(v!)])) } : {};
}

/** Every file a loaded identity was read from: what a follower watches. */
export function identityFilePaths(t: Pick<MeshTls, 'dir' | 'agent' | 'files'>): string[] {
  const base = meshTlsFiles(t.dir, t.agent);
  const f = t.files ?? {};
  const own =
    f.p12 !== undefined ? [f.p12, f.passphraseFile!] : f.cert !== undefined ? [f.cert, f.key!] : [base.cert, base.key];
  return [...own, f.ca ?? base.ca, f.crl ?? base.crl];
}

/** The key and certificate to present: the node's or an agent's from the node dir, or given files. */
function ownIdentity(opts: LoadMeshTlsOptions, files: { key: string; cert: string }): { key: Buffer; cert: Buffer } {
  const given = (['cert', 'key', 'p12', 'passphraseFile'] as const).filter((k) => opts[k] !== undefined);
  if (given.length === 0) return { key: read(files.key, 'private key'), cert: read(files.cert, 'certificate') };
  const pair = given.join(',');
  if (opts.agent !== undefined || (pair !== 'cert,key' && pair !== 'p12,passphraseFile')) {
    throw new UsageError(
      `choose one identity: agent, cert + key, or p12 + passphraseFile (got ${[...(opts.agent !== undefined ? ['agent'] : []), ...given].join(', ')})`,
      'bad_options',
    );
  }
  const file = (f: string, what: string) => {
    try {
      return fs.readFileSync(f);
    } catch (err) {
      throw new UsageError(
        `cannot read ${what} ${show(f)} (${(err as NodeJS.ErrnoException).code ?? 'error'}) — check the path and permissions`,
        'bad_options',
      );
    }
  };
  if (opts.cert !== undefined && opts.key !== undefined)
    return { cert: file(path.resolve(opts.cert), 'certificate'), key: file(path.resolve(opts.key), 'private key') };
  const p12 = path.resolve(opts.p12!);
  const passphrase = file(path.resolve(opts.passphraseFile!), 'passphrase file')
    .toString('utf8')
    .replace(/\r?\n$/, '');
  const { key, cert } = readPkcs12(file(p12, 'PKCS#12 file'), passphrase, p12);
  return { key: Buffer.from(key), cert: Buffer.from(cert) };
}

/**
 * TLS 1.3 only: every mesh party is ours (Node 20, current OpenSSL), 1.3 has no renegotiation or
 * CBC suites, and it encrypts the client certificate, so an agent's identity is not on the wire.
 */
export const MESH_MIN_VERSION = 'TLSv1.3' as const;

/** What `createSecureContext` / `setSecureContext` take: our cert, our chain, every CRL. */
export function secureContextOptions(t: TlsMaterial): SecureContextOptions {
  return { key: t.key, cert: t.cert, ca: t.ca, crl: t.crl, minVersion: MESH_MIN_VERSION };
}

export type MeshServerOptions = {
  /**
   * Phase 0.5 only: let clients without a certificate finish the handshake so `authenticate()` can
   * accept the legacy bearer. Every request must then go through `authenticate()`.
   */
  legacyClients?: boolean;
};

/** Options for `https.createServer` / `tls.createServer`: client cert required and verified. */
export function meshServerOptions(t: MeshTls, opts: MeshServerOptions = {}): TlsOptions {
  return {
    ...secureContextOptions(t),
    requestCert: true,
    rejectUnauthorized: !opts.legacyClients,
  };
}

export type MeshClientOptions = {
  /** The node name to verify the server against when connecting by IP, e.g. `ct111.mesh`. */
  servername?: string;
};

/**
 * Options for `tls.connect` / `https.request`: present our cert, verify the server's chain and CRLs,
 * its host name, and that it holds a mesh *node* certificate (an agent cannot pose as a server).
 */
export function meshClientOptions(t: MeshTls, opts: MeshClientOptions = {}): ConnectionOptions {
  return {
    ...secureContextOptions(t),
    rejectUnauthorized: true,
    ...(opts.servername ? { servername: opts.servername } : {}),
    checkServerIdentity: (host: string, cert: PeerCertificate) => checkMeshServer(host, cert, t.domain),
  };
}

export function checkMeshServer(host: string, cert: PeerCertificate, domain: MeshDomain): Error | undefined {
  const hostError = tls.checkServerIdentity(host, cert);
  if (hostError) return hostError;
  try {
    const id = leafIdentity(parseCertDer(cert.raw), domain);
    if (id.kind !== 'node')
      return new RivetError(
        `server ${show(host)} presented a ${id.kind} certificate — mesh servers present node certificates`,
        'cert_identity',
      );
  } catch (err) {
    return err as Error;
  }
  return undefined;
}
