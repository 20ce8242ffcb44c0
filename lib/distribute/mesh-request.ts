// One HTTPS request with a deadline, for the CA's CRL push and a node's CRL pull. `connectTo`
// works like curl's --connect-to: the URL's host name is still what the certificate must match
// (SNI and host check), only the TCP destination changes — for nodes not (yet) in DNS.
import https from 'node:https';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import { UsageError, show } from '../core/errors.ts';

export type ConnectTo = ReadonlyMap<string, { host: string; port: number }>;

/** Parses `host:port:connect-host:connect-port[,…]` (IPv6 connect hosts in brackets). */
export function parseConnectTo(text: string | undefined): ConnectTo {
  const map = new Map<string, { host: string; port: number }>();
  for (const item of (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([a-z0-9.-]+):(\d{1,5}):(\[[0-9a-f:.]+\]|[a-z0-9.-]+):(\d{1,5})$/i.exec(item);
    if (!m)
      throw new UsageError(
        `connect-to entry ${show(item)} must be host:port:connect-host:connect-port, e.g. ct111.mesh:3000:10.0.0.11:3000`,
      );
    map.set(`${m[1]!.toLowerCase()}:${Number(m[2])}`, { host: m[3]!.replace(/^\[|\]$/g, ''), port: Number(m[4]) });
  }
  return map;
}

export type MeshRequestOptions = {
  method?: 'GET' | 'POST';
  body?: string;
  contentType?: string;
  /** Extra request headers (provision-ct's Authorization at /enroll); never logged or echoed. */
  headers?: Record<string, string>;
  tls: ConnectionOptions;
  connectTo?: ConnectTo;
  timeoutMs: number;
  maxBytes?: number;
};

/** `peer`: the certificate the server presented (verified when `tls` verifies). */
export type MeshResponse = { status: number; body: string; peer?: X509Certificate; date?: Date };

export function meshRequest(url: string, opts: MeshRequestOptions): Promise<MeshResponse> {
  const u = new URL(url);
  if (u.protocol !== 'https:')
    return Promise.reject(
      new UsageError(`URL ${show(url)} must be https:// — CRLs and certificates travel over TLS only`),
    );
  const port = Number(u.port || 443);
  const target = opts.connectTo?.get(`${u.hostname}:${port}`);
  const maxBytes = opts.maxBytes ?? 4 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        ...opts.tls,
        host: target?.host ?? u.hostname,
        port: target?.port ?? port,
        servername: opts.tls.servername ?? (/^[\d.:[\]]+$/.test(u.hostname) ? undefined : u.hostname),
        path: `${u.pathname}${u.search}`,
        method: opts.method ?? 'GET',
        headers: {
          ...opts.headers,
          host: u.host,
          ...(opts.body !== undefined
            ? {
                'content-type': opts.contentType ?? 'application/x-pem-file',
                'content-length': Buffer.byteLength(opts.body),
              }
            : {}),
        },
        agent: false,
        signal: AbortSignal.timeout(opts.timeoutMs),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const peer = (res.socket as TLSSocket).getPeerX509Certificate?.();
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) {
            req.destroy(new Error(`response over ${maxBytes} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            peer,
            ...(res.headers.date ? { date: new Date(res.headers.date) } : {}),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', (err) =>
      reject(err.name === 'AbortError' ? new Error(`no answer within ${opts.timeoutMs} ms`) : err),
    );
    req.end(opts.body);
  });
}
