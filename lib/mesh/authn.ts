// Phase 0.5 compat (seed, phase map): the agent-channel accepts mTLS alongside the old bearer for
// one release. The bearer is accepted only while a legacy secret is configured; remove the secret
// and the same code refuses bearers. A presented-but-unverified certificate never falls back.
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { secretMatches, bearerCredential } from '../core/secret.ts';
import { MeshAuthError, peerIdentity, type PeerIdentity, type PeerOptions } from './peer.ts';
import { wasCut } from './live.ts';

export type Authenticated =
  | { method: 'mtls'; legacy: false; identity: PeerIdentity }
  | { method: 'legacy-bearer'; legacy: true; identity?: undefined };

export type AuthenticateOptions = PeerOptions & {
  /** The legacy shared secret (mesh.secret). Unset or empty: bearers are refused. */
  legacyBearer?: string;
};

function bearerOf(req: IncomingMessage): string | undefined {
  const given = bearerCredential(req.headers.authorization);
  if (given === 'malformed')
    throw new MeshAuthError(
      'Authorization header is not "Bearer <token>" — present a client certificate instead',
      'bad_auth_header',
    );
  return given;
}

/** Who sent this request: a verified client cert, or (compat only) the legacy bearer. */
export function authenticate(req: IncomingMessage, opts: AuthenticateOptions = {}): Authenticated {
  const socket = req.socket as TLSSocket;
  // A cut connection has no peer certificate any more: it must not fall through to the bearer.
  if (wasCut(socket)) return { method: 'mtls', legacy: false, identity: peerIdentity(socket, opts) };
  const presented =
    typeof socket.getPeerX509Certificate === 'function' && socket.getPeerX509Certificate() !== undefined;
  if (presented) return { method: 'mtls', legacy: false, identity: peerIdentity(socket, opts) };
  const bearer = bearerOf(req);
  const secret = opts.legacyBearer;
  if (bearer === undefined)
    throw new MeshAuthError(
      'no client certificate — connect with a mesh certificate (node.crt or agents/<id>.crt)',
      'no_cert',
    );
  if (!secret)
    throw new MeshAuthError(
      'bearer tokens are no longer accepted — connect with a mesh client certificate',
      'bearer_retired',
    );
  if (!secretMatches(bearer, secret))
    throw new MeshAuthError('legacy bearer refused — it does not match the configured secret', 'bad_bearer');
  return { method: 'legacy-bearer', legacy: true };
}
