// The CRL push endpoint (DESIGN §5): `POST /api/mesh/crl` with the PEM bundle (optionally preceded
// by the CA chain) as the body.
//
// Who may push? The bundle authenticates itself — every CRL must verify against the installed
// chain, one per CA, with no rollback — so a forged or replayed body changes nothing, whoever
// sends it. The endpoint normally sits on a mesh server (meshServerOptions), so the sender has a
// valid mesh cert anyway; `allowFrom` narrows that to the CA host's node cert for defence in depth.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { RivetError, show } from '../core/errors.ts';
import { installCrlBundle, type InstallResult } from './install.ts';
import { MeshAuthError, peerIdentity } from '../mesh/peer.ts';
import { derToPem, pemToDer } from '../x509/der.ts';
import { readBody, sendError, sendJson, toHttpError } from '../mesh/http.ts';

export type CrlReceiverOptions = {
  dir: string;
  domain?: string;
  /** Node ids whose node certificate may push (e.g. ['ct110']); default: any verified sender. */
  allowFrom?: readonly string[];
  /** Largest body accepted; a CRL entry is ~40 bytes, so 1 MiB is ~25,000 revocations. */
  maxBytes?: number;
  timeoutMs?: number;
  onInstalled?: (result: InstallResult) => void;
  onRefused?: (err: Error) => void;
};

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A request handler for the push endpoint; mount it on a mesh server at /api/mesh/crl. */
export function crlReceiver(opts: CrlReceiverOptions): Handler {
  if (!opts?.dir) throw new RivetError('crlReceiver needs { dir } — the node dir holding rivet-ca.crt and crl.pem', 'bad_options');
  const maxBytes = opts.maxBytes ?? 1024 * 1024;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return (req, res) => {
    void (async () => {
      try {
        if (req.method !== 'POST') { res.setHeader('allow', 'POST'); throw new RivetError(`${show(req.method)} is not allowed — POST the CRL bundle`, 'method'); }
        if (opts.allowFrom) {
          const peer = peerIdentity(req.socket as TLSSocket, { domain: opts.domain });
          if (peer.kind !== 'node' || !opts.allowFrom.includes(peer.nodeId)) {
            throw new MeshAuthError(`${show(peer.cn)} may not push CRLs — only ${opts.allowFrom.join(', ')}`, 'forbidden');
          }
        }
        const body = (await readBody(req, { maxBytes, timeoutMs })).toString('utf8');
        // A push may carry the CA chain too (crl-push.ts sends it): installCrlBundle takes it only
        // if it holds the installed root byte for byte and CA certificates that root signed.
        const chain = pemToDer(body, 'CERTIFICATE').map((der) => derToPem(der, 'CERTIFICATE')).join('');
        const result = await installCrlBundle(opts.dir, body, chain ? { chain } : {});
        opts.onInstalled?.(result);
        sendJson(res, 200, result);
      } catch (err) {
        opts.onRefused?.(err as Error);
        // Our own failure (a full disk, say) is reported to the pusher in full: it is the CA host.
        sendError(res, err instanceof RivetError && err.status < 500 ? toHttpError(err) : { status: 500, code: 'failed', message: `CRL not installed: ${(err as Error).message}` });
      }
    })();
  };
}
