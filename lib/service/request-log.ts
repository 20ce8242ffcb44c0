// serve's traffic log (issue 15): one line per request — source, method, path, status, ms, peer —
// and one per refused handshake — source, peer, reason. Never a header (the Authorization header
// carries the bootstrap secret or a token), never a body, never the query string; whatever the
// client chose (path, a CN of a certificate nobody verified) is quoted so it cannot forge lines.
import type https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';

const PLAIN = /^[A-Za-z0-9/._@:+-]{1,200}$/;
const clean = (text: string) =>
  PLAIN.test(text) ? text : JSON.stringify(text.length > 200 ? `${text.slice(0, 197)}...` : text);

/** The client certificate's CN, marked when the handshake did not verify it; "no certificate" without one. */
export function peerLabel(socket: TLSSocket): string {
  const x509 = socket.getPeerX509Certificate?.();
  if (!x509) return 'no certificate';
  const cn =
    x509.subject
      .split('\n')
      .find((l) => l.startsWith('CN='))
      ?.slice(3) ?? '(no CN)';
  return socket.authorized
    ? clean(cn)
    : `${clean(cn)} (unverified: ${clean(String(socket.authorizationError ?? 'unknown'))})`;
}

export function requestLine(req: IncomingMessage, status: number | 'aborted', ms: number): string {
  const path = (req.url ?? '/').split('?')[0]!;
  return `${req.socket.remoteAddress ?? '?'} ${clean(req.method ?? '?')} ${clean(path)} ${status} ${ms}ms ${peerLabel(req.socket as TLSSocket)}`;
}

/** Attaches the log to `server`; `log` gets lines without a timestamp (serve's logger adds it). */
export function logTraffic(server: https.Server, log: (line: string) => void): void {
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    res.once('close', () =>
      log(requestLine(req, res.writableFinished ? res.statusCode : 'aborted', Math.round(performance.now() - started))),
    );
  });
  // A refused handshake's socket is often gone by the time it is reported: note the peer first.
  const sources = new WeakMap<object, string>();
  server.on('connection', (raw: { remoteAddress?: string }) => {
    if (raw.remoteAddress) sources.set(raw, raw.remoteAddress);
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException & { reason?: string }, socket: TLSSocket) => {
    // The reason is ours (Node's or OpenSSL's short text), not the client's.
    const reason = `${err.code ?? 'ERR'} ${err.reason ?? err.message.split('\n')[0]}`.slice(0, 200);
    const source =
      socket.remoteAddress ?? sources.get((socket as unknown as { _parent?: object })._parent ?? {}) ?? '?';
    log(`${source} handshake refused: ${peerLabel(socket)} — ${reason}`);
  });
}
