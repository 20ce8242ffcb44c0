// The door of a watched mesh server: every finished handshake passes here before the server's own
// connection handler (https, http2, or a tls.Server callback) sees the socket. A peer that did
// not verify is refused here and never reaches the application; one that did is followed by the
// ConnectionGuard so a later revocation cuts it.
//
// Why finish the handshake for a refused client (docs/LIBRARY.md, watchMeshTls "Refusals"): Node
// verifies the client certificate after its own Finished and then drops the socket without a TLS
// alert, so clients see a bare reset. Finishing costs the server nothing more (TLS 1.3 has done
// all its work by then; proof of key possession still fails inside the handshake) and lets an
// HTTP client read one JSON error about *its own* certificate (403; 401 without one). Nothing is
// served: no request is parsed, the reply is written before any byte is read, input is
// discarded, and the socket is destroyed after a short linger.
import http2 from 'node:http2';
import https from 'node:https';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { httpStatusOf, type ErrorCode } from '../core/errors.ts';
import { ConnectionGuard, peerCn, type MeshLogger } from './live.ts';
import type { TrustProblem } from './trust.ts';

export type RefusalMode = 'explain' | 'reset';

/** The JSON error code a refused client reads, from OpenSSL's verify error. */
export function refusalCode(opensslCode: string): ErrorCode {
  switch (opensslCode) {
    case 'no_cert':
      return 'no_cert';
    case 'CERT_REVOKED':
      return 'cert_revoked';
    case 'CERT_HAS_EXPIRED':
      return 'cert_expired';
    case 'CERT_NOT_YET_VALID':
      return 'cert_not_yet_valid';
    case 'UNABLE_TO_GET_CRL':
    case 'CRL_HAS_EXPIRED':
    case 'CRL_NOT_YET_VALID':
      return 'crl_unavailable';
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
      return 'unknown_ca';
    default:
      return 'cert_untrusted';
  }
}

const HUMAN: Partial<Record<ErrorCode, string>> = {
  no_cert: 'this server requires a client certificate — connect with a mesh certificate (node.crt or agents/<id>.crt)',
  cert_revoked: 'your client certificate is revoked',
  cert_expired: 'your client certificate has expired — renew it (provision-ct renew)',
  cert_not_yet_valid: 'your client certificate is not valid yet — check the clocks',
  crl_unavailable: 'this server cannot check revocation right now (its CRL is missing or out of date)',
  unknown_ca: "your client certificate is not issued by this mesh's CA",
  cert_untrusted: 'your client certificate did not verify',
};

/** Why the handshake's own verification refused this peer, or undefined when it may pass. */
function handshakeProblem(socket: TLSSocket, certRequired: boolean): TrustProblem | undefined {
  const presented = socket.getPeerX509Certificate() !== undefined;
  if (!presented) return certRequired ? { code: 'no_cert', message: 'no client certificate' } : undefined;
  if (socket.authorized) return undefined;
  const code = String(socket.authorizationError ?? 'UNVERIFIED');
  return { code, message: 'the certificate check at the handshake failed' };
}

const LINGER_MS = 1_000;
const MAX_DISCARD = 64 * 1024;

const bodyOf = (code: ErrorCode) => JSON.stringify({ error: { code, message: HUMAN[code] ?? HUMAN.cert_untrusted } });

function explainHttp1(socket: TLSSocket, code: ErrorCode): void {
  const body = bodyOf(code);
  const status = httpStatusOf(code);
  socket.write(
    `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 503 ? 'Service Unavailable' : 'Forbidden'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
  );
  socket.end();
}

function explainHttp2(socket: TLSSocket, code: ErrorCode): void {
  const body = bodyOf(code);
  const session = http2.performServerHandshake(socket);
  session.on('error', () => socket.destroy());
  session.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': httpStatusOf(code), 'content-type': 'application/json', 'cache-control': 'no-store' });
    stream.end(body, () => session.close());
  });
}

function protocolOf(server: TlsServer, socket: TLSSocket): 'h1' | 'h2' | 'raw' {
  if (socket.alpnProtocol === 'h2') return 'h2';
  if (server instanceof https.Server) return 'h1';
  if (server.constructor.name === 'Http2SecureServer' && socket.alpnProtocol === 'http/1.1') return 'h1';
  return 'raw';
}

// What the server demanded before the first gate took the decision over (a second watchMeshTls on
// the same server must not read the gate's own rejectUnauthorized=false as "legacy clients").
const certRequiredBy = new WeakMap<TlsServer, boolean>();

export type GateOptions = { guard: () => ConnectionGuard; refusals: RefusalMode; logger?: MeshLogger };

/**
 * Puts the gate in front of `server`'s connection handlers (those registered so far: a
 * 'secureConnection' listener added later sees every socket, so add none that serves). Only for servers that request client
 * certificates; a legacyClients server (rejectUnauthorized false) still lets certless clients in
 * for the bearer, but never a presented certificate that did not verify.
 */
export function gateServer(server: TlsServer, opts: GateOptions): void {
  const s = server as TlsServer & { requestCert?: boolean; rejectUnauthorized?: boolean };
  if (!s.requestCert) return;
  const certRequired = certRequiredBy.get(server) ?? s.rejectUnauthorized !== false;
  certRequiredBy.set(server, certRequired);
  const inner = server.listeners('secureConnection') as Array<(socket: TLSSocket) => void>;
  server.removeAllListeners('secureConnection');
  // From here on the gate decides, so the handshake may finish for a peer it will refuse.
  s.rejectUnauthorized = false;
  // Handshakes that fail inside OpenSSL (a forged CertificateVerify, no common version, a
  // certless client on a server that demands one is *not* among them: it reaches the gate).
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    if (!/^ERR_SSL/.test(err.code ?? '')) return; // resets and timeouts are not refusals
    opts.logger?.({
      event: 'refused',
      side: 'server',
      code: err.code!,
      reason: `handshake failed: ${err.message}`,
      remote: socket.remoteAddress,
    });
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    const problem = handshakeProblem(socket, certRequired) ?? opts.guard().admit(socket);
    if (!problem) {
      for (const l of inner) l.call(server, socket);
      return;
    }
    refuse(server, socket, problem, opts);
  });
}

function refuse(server: TlsServer, socket: TLSSocket, problem: TrustProblem, opts: GateOptions): void {
  opts.logger?.({
    event: 'refused',
    side: 'server',
    cn: peerCn(socket),
    code: problem.code,
    reason: problem.message,
    remote: socket.remoteAddress,
  });
  socket.on('error', () => {});
  const proto = opts.refusals === 'explain' ? protocolOf(server, socket) : 'raw';
  if (proto === 'raw') {
    socket.destroy();
    return;
  }
  // Whatever the client sends is read and dropped (an unread request makes the kernel answer
  // our close with a reset, which can discard the reply), up to a bound, for at most LINGER_MS.
  let discarded = 0;
  if (proto === 'h1')
    socket.on('data', (chunk: Buffer) => {
      discarded += chunk.length;
      if (discarded > MAX_DISCARD) socket.destroy();
    });
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
  const code = refusalCode(problem.code);
  if (proto === 'h1') explainHttp1(socket, code);
  else explainHttp2(socket, code);
}
