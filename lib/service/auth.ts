// Who may call what (DESIGN §4.7): the bootstrap secret or a one-time token at /enroll only, a
// verified client certificate at /renew and /agents (failed attempts are braked by limiter.ts).
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { parseCertDer, type CertInfo } from '../x509/cert.ts';
import { leafIdentity } from '../x509/leaf-check.ts';
import { RivetError, show } from '../core/errors.ts';
import { bearerCredential } from '../core/secret.ts';
import type { Identity, MeshDomain } from '../core/identity.ts';

/** The bearer credential, or undefined when no Authorization header was sent. */
export function bearer(req: IncomingMessage): string | undefined {
  const given = bearerCredential(req.headers.authorization);
  if (given === 'malformed')
    throw new RivetError('Authorization must be "Bearer <bootstrap secret or enrollment token>"', 'bad_auth');
  return given;
}

export type Peer = { id: Identity; info: CertInfo };

/**
 * The caller's identity from the client certificate the TLS layer verified against our chain and
 * CRLs. A certificate from another CA (even with one of our CNs), a revoked or an expired one
 * reaches here unauthorized and is refused with OpenSSL's reason.
 */
export function verifiedPeer(req: IncomingMessage, domain: MeshDomain): Peer {
  const socket = req.socket as TLSSocket;
  const cert = socket.getPeerCertificate?.();
  if (!cert || !cert.raw)
    throw new RivetError('this endpoint needs a client certificate issued by this CA (mTLS)', 'client_cert_required');
  if (!socket.authorized) {
    // The CN it claims goes into the message (so into the audit line): which identity was refused
    // matters most for a revoked one, which the handshake's CRL check refuses before we see it.
    const claimed = typeof cert.subject?.CN === 'string' ? ` (CN ${show(cert.subject.CN)}, not verified)` : '';
    const reason = String(socket.authorizationError ?? 'not verified');
    throw new RivetError(`client certificate rejected${claimed}: ${reason}`, 'client_cert_rejected', { reason });
  }
  const info = parseCertDer(cert.raw);
  try {
    return { id: leafIdentity(info, domain), info };
  } catch (err) {
    throw new RivetError((err as Error).message, 'cert_identity');
  }
}
