// Talking to the enrollment service from a node (DESIGN §6). First contact trusts nothing: the
// chain is fetched without verification, and only a root whose SHA-256 matches the pinned
// fingerprint (and intermediates that root signed) is kept. Everything after that — the one
// request that carries the bootstrap secret, then /renew and /agents over mTLS — is verified
// against that pinned chain.
import type { ConnectionOptions, PeerCertificate } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import { RivetError, UsageError, show } from '../core/errors.ts';
import { parseCertDer, parseCertsPem, type CertInfo } from '../x509/cert.ts';
import { leafIdentity } from '../x509/leaf-check.ts';
import { checkMeshServer, meshClientOptions, type MeshTls } from '../mesh/tls.ts';
import { meshRequest } from '../distribute/mesh-request.ts';
import type { MeshDomain, NodeId } from '../core/identity.ts';
import type { Endpoint } from './settings.ts';
import { DATE_ERRORS, describeSkew, measureSkew, skewFrom, type Skew } from './skew.ts';

const TIMEOUT_MS = 30_000;

/** `servedBy`: the certificate the service answered with, over TLS verified against the pinned chain. */
export type Reply = {
  cn: string;
  serial: string;
  notAfter: string;
  cert: string;
  chain: string;
  crl: string;
  servedBy?: X509Certificate;
};

/**
 * A refusal from the service: its HTTP status and `{ error: { code, message, reason? } }` as sent
 * (the service's code is `remoteCode`; this error's own code says "the datahub refused").
 */
export class DatahubRefused extends RivetError {
  constructor(
    readonly httpStatus: number,
    readonly remoteCode: string,
    message: string,
    readonly remoteReason?: string,
  ) {
    super(message, 'refused_by_datahub');
    this.name = 'DatahubRefused';
  }
}

function isSelfSigned(c: CertInfo): boolean {
  return c.x509.issuer === c.x509.subject && c.x509.verify(c.x509.publicKey);
}

/**
 * Keeps from `pem` the root whose DER SHA-256 is `fingerprint` and the CA certificates that root
 * signed; refuses anything else. Returns the verified chain (intermediates first, then the root).
 */
export function pinChain(pem: string, fingerprint: string, source: string): { chainPem: string; root: CertInfo } {
  let certs: CertInfo[];
  try {
    certs = parseCertsPem(pem);
  } catch (err) {
    throw new RivetError(
      `${source} is not a PEM certificate chain (${(err as Error).message}) — is --datahub the rivet-ca enrollment service?`,
      'bad_chain',
    );
  }
  const roots = certs.filter((c) => c.ca && isSelfSigned(c));
  if (roots.length !== 1)
    throw new RivetError(
      `${source} holds ${roots.length} self-signed root certificates — expected exactly one`,
      'bad_chain',
    );
  const root = roots[0]!;
  const got = `sha256:${root.fingerprint256}`;
  if (got !== fingerprint) {
    throw new UsageError(
      `the datahub's root CA ${show(root.subjectCNs[0] ?? '?')} has fingerprint ${got}, not the pinned ${fingerprint} — nothing was sent; check --ca-fingerprint against \`rivet-ca status\` on the CA host (or someone is in the middle)`,
      'fingerprint_mismatch',
    );
  }
  const intermediates = certs.filter((c) => c !== root);
  for (const c of intermediates) {
    if (!c.ca || !c.x509.checkIssued(root.x509) || !c.x509.verify(root.x509.publicKey)) {
      throw new RivetError(
        `${source} holds ${show(c.subjectCNs[0] ?? c.x509.subject)}, which is not a CA certificate signed by the pinned root — refusing the chain`,
        'bad_chain',
      );
    }
  }
  return { chainPem: [...intermediates, root].map((c) => c.x509.toString()).join(''), root };
}

/** GET /ca.crt without verifying the server (we have nothing to verify it with yet). */
export async function fetchChainUnverified(ep: Endpoint): Promise<string> {
  return (await fetchChainAndClock(ep)).pem;
}

/** The same request, with the datahub's clock as its Date header gave it (lib/node/skew.ts). */
export async function fetchChainAndClock(ep: Endpoint): Promise<{ pem: string; skew?: Skew }> {
  const url = `${ep.base}/ca.crt`;
  // Unverified: it sends nothing and what it returns is trusted only after the fingerprint check in
  // pinChain (the other unverified request is skew.ts's Date probe after a date failure).
  const sent = Date.now();
  const res = await request(url, {
    tls: { rejectUnauthorized: false },
    connectTo: ep.connectTo,
    timeoutMs: TIMEOUT_MS,
  });
  if (res.status !== 200)
    throw new RivetError(
      `GET ${url} answered HTTP ${res.status} — is --datahub the rivet-ca enrollment service?`,
      'bad_chain',
    );
  return { pem: res.body, skew: skewFrom(res.date, sent, Date.now()) };
}

/** TLS options for talking to the datahub before this node has a certificate: the pinned chain only. */
export function pinnedTls(chainPem: string, domain: MeshDomain): ConnectionOptions {
  return {
    ca: chainPem,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    checkServerIdentity: (host: string, cert: PeerCertificate) => checkMeshServer(host, cert, domain),
  };
}

export async function postEnroll(
  ep: Endpoint,
  tls: ConnectionOptions,
  credential: string,
  body: { csr: string; sans?: string[] },
): Promise<Reply> {
  return postJson(ep, '/enroll', tls, body, { authorization: `Bearer ${credential}` });
}

/** /renew or /agents over mTLS with the node's own certificate. */
export async function postMtls(
  ep: Endpoint,
  mesh: MeshTls,
  route: '/renew' | '/agents',
  body: { csr: string },
): Promise<Reply> {
  return postJson(ep, route, meshClientOptions(mesh), body);
}

async function postJson(
  ep: Endpoint,
  route: string,
  tls: ConnectionOptions,
  body: unknown,
  headers?: Record<string, string>,
): Promise<Reply> {
  const url = `${ep.base}${route}`;
  const res = await request(url, {
    method: 'POST',
    body: JSON.stringify(body),
    contentType: 'application/json',
    headers,
    tls,
    connectTo: ep.connectTo,
    timeoutMs: TIMEOUT_MS,
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any JSON; every field is type-checked before use below
  let json: any;
  try {
    json = JSON.parse(res.body);
  } catch {
    json = undefined;
  }
  if (res.status !== 200) {
    const code = typeof json?.error?.code === 'string' ? json.error.code : 'http_error';
    const message = typeof json?.error?.message === 'string' ? json.error.message : `HTTP ${res.status}`;
    const reason = typeof json?.error?.reason === 'string' ? json.error.reason : undefined;
    throw new DatahubRefused(res.status, code, `${route} refused (HTTP ${res.status} ${code}): ${message}`, reason);
  }
  if (!json || typeof json.cert !== 'string' || typeof json.chain !== 'string' || typeof json.crl !== 'string') {
    throw new RivetError(
      `${route} answered 200 without cert, chain and crl — is --datahub the rivet-ca enrollment service?`,
      'bad_reply',
    );
  }
  return { ...(json as Reply), servedBy: res.peer };
}

/**
 * The node whose certificate the datahub presented — the CA host (DESIGN §4.7: `serve` presents the
 * CA host's node cert), whom crlReceiver lets push. Undefined when it is not a node certificate.
 */
export function datahubNode(cert: X509Certificate | undefined, domain: MeshDomain): NodeId | undefined {
  if (!cert) return undefined;
  try {
    const id = leafIdentity(parseCertDer(cert.raw), domain);
    return id.kind === 'node' ? id.nodeId : undefined;
  } catch {
    return undefined;
  }
}

/** For a node enrolled before the CA host was recorded: who answers the pinned datahub now. */
export async function askDatahubNode(ep: Endpoint, chainPem: string, domain: MeshDomain): Promise<NodeId | undefined> {
  const res = await request(`${ep.base}/healthz`, {
    tls: pinnedTls(chainPem, domain),
    connectTo: ep.connectTo,
    timeoutMs: TIMEOUT_MS,
  });
  return datahubNode(res.peer, domain);
}

async function request(url: string, opts: Parameters<typeof meshRequest>[1]) {
  try {
    return await meshRequest(url, opts);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code && DATE_ERRORS.has(code)) {
      // A date refused in the handshake: the clock is the first suspect, not the address.
      const u = new URL(url);
      const hint = describeSkew(await measureSkew({ base: u.origin, connectTo: opts.connectTo }), u.hostname);
      if (hint)
        throw new RivetError(`${show(url)}: ${(err as Error).message} — ${hint}`, 'clock_skew', {
          cause: err,
          reason: code,
        });
    }
    throw new RivetError(
      `cannot reach ${show(url)}: ${(err as Error).message} — is the datahub up, and --datahub (and --servername) right?`,
      'unreachable',
      { reason: code },
    );
  }
}
