// The CRL push endpoint (DESIGN §5): `POST /api/mesh/crl` with the PEM bundle (optionally preceded
// by the CA chain) as the body.
//
// Who may push: only a client whose certificate the handshake verified — whatever the server's
// `legacyClients` mode — and that is the node certificate of the CA host: `allowFrom` if given,
// else the `caHost` that provision-ct recorded in node.json at enrollment. With neither, every push
// is refused (403 push_sender_unknown): fail closed, the pull still keeps the node current.
// What may be installed is then decided by the bundle alone (install.ts, crl-plan.ts): the CA
// host's own certificate replaying old material changes nothing either.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { MAX_CRL_BUNDLE_BYTES } from '../core/limits.ts';
import { RivetError, show } from '../core/errors.ts';
import { installCrlBundle, recordRefusal, type InstallResult } from './install.ts';
import { CrlRefused } from './refused.ts';
import { recordedCaHost } from './push-sender.ts';
import { MeshAuthError, peerIdentity } from '../mesh/peer.ts';
import { derToPem, pemToDer } from '../x509/der.ts';
import { readBody, sendError, sendJson, toHttpError } from '../mesh/http.ts';

export type CrlReceiverOptions = {
  dir: string;
  domain?: string;
  /** Node ids whose node certificate may push (e.g. ['ct110']); default: the CA host recorded in node.json. */
  allowFrom?: readonly string[];
  /** Largest body accepted; a CRL entry is ~40 bytes, so 1 MiB is ~25,000 revocations. */
  maxBytes?: number;
  timeoutMs?: number;
  onInstalled?: (result: InstallResult) => void;
  /** Every refused push: who sent it (`from`, the verified CN, if any) and why (`err.code`, `err.message`). */
  onRefused?: (err: Error, info: { from?: string }) => void;
};

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** The verified sender, if it may push here; throws a 401/403 MeshAuthError otherwise. */
function authorizeSender(req: IncomingMessage, opts: CrlReceiverOptions): string {
  // peerIdentity refuses plain HTTP, a missing certificate and one the handshake did not verify
  // (what a legacyClients server lets through), before anything else is looked at.
  const peer = peerIdentity(req.socket as TLSSocket, { domain: opts.domain });
  let allowed: readonly string[] | undefined = opts.allowFrom;
  if (allowed === undefined) {
    const recorded = recordedCaHost(opts.dir);
    if (!recorded) {
      throw new MeshAuthError(
        `${show(peer.cn)} may not push CRLs: this node has no CA host recorded (node.json has no caHost) and crlReceiver was given no allowFrom — re-run \`provision-ct enroll\` or pass allowFrom: ['<ca-host node id>']; until then pushes are refused and the pull keeps the node current`,
        'push_sender_unknown',
      );
    }
    allowed = [recorded];
  }
  if (peer.kind !== 'node' || !allowed.includes(peer.nodeId)) {
    throw new MeshAuthError(
      `${show(peer.cn)} may not push CRLs — only the node certificate of ${allowed.length ? allowed.join(', ') : '(nobody: allowFrom is empty)'}`,
      'forbidden',
    );
  }
  return peer.cn;
}

/** A request handler for the push endpoint; mount it on a mesh server at /api/mesh/crl. */
export function crlReceiver(opts: CrlReceiverOptions): Handler {
  if (!opts?.dir)
    throw new RivetError('crlReceiver needs { dir } — the node dir holding rivet-ca.crt and crl.pem', 'bad_options');
  const maxBytes = opts.maxBytes ?? MAX_CRL_BUNDLE_BYTES;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return (req, res) => {
    void (async () => {
      let from: string | undefined;
      try {
        if (req.method !== 'POST') {
          res.setHeader('allow', 'POST');
          throw new RivetError(`${show(req.method)} is not allowed — POST the CRL bundle`, 'method');
        }
        from = authorizeSender(req, opts);
        const body = (await readBody(req, { maxBytes, timeoutMs })).toString('utf8');
        // A push may carry the CA chain too (push.ts sends it): installCrlBundle takes what it
        // adds only if the installed root signed it, and never loses a CA still in use.
        const chain = pemToDer(body, 'CERTIFICATE')
          .map((der) => derToPem(der, 'CERTIFICATE'))
          .join('');
        const result = await installCrlBundle(opts.dir, body, { ...(chain ? { chain } : {}), source: 'push', from });
        opts.onInstalled?.(result);
        sendJson(res, 200, result);
      } catch (err) {
        const e = err as Error & { code?: string };
        const who = from ?? peerName(req);
        // install.ts records its own refusals; the sender and body checks are recorded here.
        if (!(err instanceof CrlRefused) && e.code !== 'method')
          await recordRefusal(opts.dir, {
            source: 'push',
            from: who,
            code: e.code ?? 'failed',
            message: e.message,
          }).catch(() => {});
        opts.onRefused?.(e, { from: who });
        if (err instanceof CrlRefused && err.retryAt)
          res.setHeader('retry-after', String(Math.max(1, Math.ceil((err.retryAt.getTime() - Date.now()) / 1000))));
        // Our own failure (a full disk, say) is reported in full to an authorized pusher only: the CA host.
        sendError(
          res,
          (err instanceof RivetError && err.status < 500) || !from
            ? toHttpError(err)
            : { status: 500, code: 'failed', message: `CRL not installed: ${e.message}` },
        );
      }
    })();
  };
}

/** The subject CN of whatever certificate the client showed, verified or not, for the refusal log. */
function peerName(req: IncomingMessage): string | undefined {
  const x509 = (req.socket as TLSSocket).getPeerX509Certificate?.();
  const cn = x509?.subject
    .split('\n')
    .find((l) => l.startsWith('CN='))
    ?.slice(3);
  return cn ? `${cn}${(req.socket as TLSSocket).authorized ? '' : ' (unverified)'}` : undefined;
}
