// The client side: the SDK's Streamable HTTP client transport over mTLS with a mesh identity — a
// node dir + agent, a cert + key, or a p12 + passphrase file. The server must prove a mesh *node*
// certificate for the URL's host (or `servername`); `connectTo` changes only where the TCP
// connection goes, like curl's --connect-to. Failures come back as RivetErrors with a code:
// `revoked` when our own CRL revokes our certificate, `unreachable`, `untrusted_server`.
import { X509Certificate } from 'node:crypto';
import { fetch as undiciFetch } from 'undici';
import {
  StreamableHTTPClientTransport,
  type StreamableHTTPClientTransportOptions,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { RivetError, UsageError, isErrorCode, show } from '../core/errors.ts';
import { loadMeshTls, type LoadMeshTlsOptions, type MeshTls } from '../mesh/tls.ts';
import { meshDispatcher } from '../mesh/dispatcher.ts';
import type { MeshLogger } from '../mesh/live.ts';
import { isRevoked } from '../x509/crl.ts';
import { subjectCn } from '../x509/cert.ts';
import { crlsOf } from './revocation.ts';

export type MeshMcpClientOptions = {
  /** Who we are: loadMeshTls options (read now, and again to explain a refusal) or loaded material. */
  identity: LoadMeshTlsOptions | MeshTls;
  /** The name the server must prove when the URL holds an IP, e.g. `ct110-mcp.mesh`. */
  servername?: string;
  /** `host:port` to connect to instead of the URL's; the URL's host is still what is verified. */
  connectTo?: string;
  connectTimeoutMs?: number;
  /** Where refused and cut connections are reported; default one line on stderr. */
  logger?: MeshLogger;
  /** Passed to the SDK transport (reconnection, session id, extra request headers). */
  transport?: Omit<StreamableHTTPClientTransportOptions, 'fetch'>;
};

const isMaterial = (x: LoadMeshTlsOptions | MeshTls): x is MeshTls =>
  Buffer.isBuffer((x as MeshTls).key) && Array.isArray((x as MeshTls).crl);

export function parseHostPort(text: string, what = 'connect-to'): { host: string; port: number } {
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+):(\d{1,5})$/i.exec(text);
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535)
    throw new UsageError(`${what} ${show(text)} must be host:port, e.g. 10.0.0.10:8443 or [fd00::10]:8443`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** Refuses to present a certificate that our own CRL revokes or that has expired: say so now. */
export function checkOwnCertificate(t: MeshTls, where = 'the CRL bundle'): void {
  const leaf = new X509Certificate(t.cert);
  const cn = subjectCn(leaf) ?? leaf.subject;
  const serial = leaf.serialNumber.toUpperCase();
  if (isRevoked(crlsOf(t), serial)) {
    throw new RivetError(
      `certificate ${show(cn)} (serial ${serial}) was revoked (${where} lists it) — ask the CA operator for a new certificate`,
      'revoked',
    );
  }
  if (new Date(leaf.validTo).getTime() < Date.now()) {
    throw new RivetError(
      `certificate ${show(cn)} (serial ${serial}) expired on ${new Date(leaf.validTo).toISOString()} — renew it or ask the CA operator for a new one`,
      'cert_not_live',
    );
  }
}

const CONNECT_FAILURES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const CLOSED = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/** Our reading of a failed fetch: a code to branch on and a message that says what to do. */
function explain(err: unknown, url: URL, current: () => MeshTls): unknown {
  const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
  const code = cause?.code ?? '';
  if ((err as Error).name === 'AbortError' || err instanceof RivetError) return err;
  if (cause instanceof RivetError)
    return new RivetError(`server ${show(url.host)} refused: ${cause.message}`, 'untrusted_server', { cause });
  if (CONNECT_FAILURES.has(code))
    return new RivetError(`cannot reach ${show(url.host)} (${code}) — check --url or --connect-to`, 'unreachable', {
      cause,
    });
  if (CLOSED.has(code)) {
    // A mesh server refuses a certificate by closing the connection after the handshake, without
    // saying why (Node sends no alert): if the CRL we hold now revokes us, that is why.
    checkOwnCertificate(current());
    return new RivetError(
      `${show(url.host)} closed the connection without answering — it refuses this certificate (revoked, expired or from another CA) or is restarting`,
      'unreachable',
      { cause },
    );
  }
  if (code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || /CERT|SELF_SIGNED|UNABLE_TO/.test(code)) {
    return new RivetError(
      `server ${show(url.host)} is not trusted (${code}) — it must present a mesh node certificate for that name`,
      'untrusted_server',
      { cause },
    );
  }
  return err;
}

/** A mesh server's refusal (`{ error: { message, data: { code } } }`, errors.ts) as the RivetError it was. */
async function refusalOf(res: Response, url: URL): Promise<RivetError | undefined> {
  let body: { error?: { code?: unknown; message?: unknown; data?: { code?: unknown; reason?: unknown } } };
  try {
    body = (await res.json()) as typeof body;
  } catch {
    return undefined;
  }
  // JSON-RPC (mountMcp: the code in data) or the mesh gate's own refusal ({ code, message }).
  const code = body.error?.data?.code ?? body.error?.code;
  if (!isErrorCode(code) || typeof body.error?.message !== 'string') return undefined;
  const reason = typeof body.error.data?.reason === 'string' ? body.error.data.reason : undefined;
  return new RivetError(`${url.host} refused: ${body.error.message}`, code, reason ? { reason } : undefined);
}

/** fetch over mTLS with `tls`; `close()` ends its connections. */
export function meshFetch(url: URL, opts: MeshMcpClientOptions): FetchLike & { close(): Promise<void> } {
  const tls = isMaterial(opts.identity) ? opts.identity : loadMeshTls(opts.identity);
  const current = () => (isMaterial(opts.identity) ? opts.identity : loadMeshTls(opts.identity));
  checkOwnCertificate(tls);
  // The mesh's following dispatcher: new CRLs and chains in the identity's files apply to new
  // connections, and pooled connections to a server that no longer verifies are cut.
  const dispatcher = meshDispatcher(tls, {
    servername: opts.servername,
    connectTimeoutMs: opts.connectTimeoutMs,
    logger: opts.logger,
    ...(opts.connectTo ? { connectTo: parseHostPort(opts.connectTo) } : {}),
  });
  const f = (async (input: string | URL, init?: RequestInit) => {
    let res: Response;
    try {
      res = (await undiciFetch(input, { ...(init as object), dispatcher })) as unknown as Response;
    } catch (err) {
      throw explain(err, url, current);
    }
    const refusal = [401, 403, 404, 503].includes(res.status) ? await refusalOf(res.clone(), url) : undefined;
    if (refusal) throw refusal;
    return res;
  }) as FetchLike & { close(): Promise<void> };
  f.close = () => dispatcher.close();
  return f;
}

/** The SDK transport; closing it also closes its mTLS connections. */
export class MeshMcpTransport extends StreamableHTTPClientTransport {
  readonly #fetch: ReturnType<typeof meshFetch>;
  constructor(url: URL, f: ReturnType<typeof meshFetch>, opts: MeshMcpClientOptions) {
    super(url, { ...opts.transport, fetch: f });
    this.#fetch = f;
  }
  override async close(): Promise<void> {
    await super.close();
    await this.#fetch.close().catch(() => {});
  }
}

/** `new Client(...).connect(meshMcpTransport('https://ct110-mcp.mesh:8443/mcp', { identity }))`. */
export function meshMcpTransport(url: string | URL, opts: MeshMcpClientOptions): MeshMcpTransport {
  const u = new URL(url);
  if (u.protocol !== 'https:')
    throw new UsageError(`MCP URL ${show(String(url))} must be https:// — mesh MCP servers speak mTLS only`);
  return new MeshMcpTransport(u, meshFetch(u, opts), opts);
}
