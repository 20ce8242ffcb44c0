// `rivet-ca serve` (DESIGN §4.7): the HTTPS enrollment service. TLS always; a client certificate
// is requested at the handshake but required per route, because /enroll callers do not have one
// yet. Every decision lands in audit.log; failed authentication is throttled per source address.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Ca } from '../ca/handle.ts';
import type { Cidr } from '../core/san.ts';
import { audit } from '../sys/audit.ts';
import { parseJsonObject, readBody, sendError, sendJson, toHttpError } from '../mesh/http.ts';
import { FailureLimiter } from './auth.ts';
import { enroll, enrollCredential, mintAgent, mtlsPeer, renew, type RouteContext } from './routes.ts';
import { loadTlsMaterial, tlsFiles, type TlsFiles } from './tls-material.ts';
import { secureContextOptions } from '../mesh/tls.ts';
import { watchServerTls } from '../mesh/watch.ts';
import { publicGet } from './public.ts';
import { SigningQueue } from './signing-queue.ts';
import { DEFAULT_RATE_LIMITS, IssuanceThrottle, type RateLimits } from './renewal-checks.ts';
import { ServiceMetrics } from './metrics.ts';
import { refreshCrls } from '../ops/crl.ts';
import { RivetError } from '../core/errors.ts';

export type Limits = {
  maxBodyBytes: number;
  bodyTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  handshakeTimeoutMs: number;
  maxFailures: number;
  failureWindowMs: number;
  /** How often the CRLs are re-signed when due (also once at start). */
  crlRefreshMs: number;
  /** How often the TLS files' stamps are compared, besides fs.watch (which some file systems lack). */
  reloadCheckMs: number;
  /** Requests to /renew and /agents per identity and per source address (renewal-checks.ts). */
  issuance: RateLimits;
};

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 64 * 1024, bodyTimeoutMs: 10_000, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, handshakeTimeoutMs: 10_000,
  maxFailures: 10, failureWindowMs: 60_000, crlRefreshMs: 60 * 60_000, reloadCheckMs: 1_000, issuance: DEFAULT_RATE_LIMITS,
};

export type ServiceOptions = {
  ca: Ca;
  sanCidrs: readonly Cidr[];
  secret?: string;
  tlsCert: string;
  tlsKey: string;
  host: string;
  port: number;
  limits?: Partial<Limits>;
  log?: (line: string) => void;
  /** `--metrics-listen`: GET /metrics also on a plain-HTTP listener of its own (lib/service/metrics.ts). */
  metricsListen?: { host: string; port: number };
};

export type EnrollService = { server: https.Server; port: number; host: string; metricsPort?: number; reload: () => Promise<boolean>; close: () => Promise<void> };

const PUBLIC_PATHS = ['/healthz', '/crl.pem', '/ca.crt'];
const POST_ROUTES: Record<string, string> = { '/enroll': 'enroll', '/renew': 'renew', '/agents': 'agent' };

export async function startEnrollService(opts: ServiceOptions): Promise<EnrollService> {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const log = opts.log ?? (() => {});
  const { ca } = opts;
  const files: TlsFiles = tlsFiles(ca, opts.tlsCert, opts.tlsKey);
  await refreshCrls(ca); // never start serving with a CRL about to lapse
  const material = await loadTlsMaterial(files);
  const queue = new SigningQueue(ca);
  const limiter = new FailureLimiter({ maxFailures: limits.maxFailures, windowMs: limits.failureWindowMs });
  const throttle = new IssuanceThrottle(limits.issuance);
  const metrics = new ServiceMetrics(ca);

  const server = https.createServer({
    ...secureContextOptions(material),
    requestCert: true,
    rejectUnauthorized: false, // enforced per route: /enroll callers have no certificate yet
    handshakeTimeout: limits.handshakeTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: 5_000,
    // Node checks header/request deadlines on this interval (default 30 s): keep it below them.
    connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
  });

  const handlePost = async (route: string, req: IncomingMessage, res: ServerResponse) => {
    const source = req.socket.remoteAddress ?? 'unknown';
    const ctx: RouteContext = { ca, sanCidrs: opts.sanCidrs, secret: opts.secret, decision: { source }, queue, throttle };
    try {
      const wait = limiter.blockedFor(source);
      if (wait > 0) throw new RivetError(`too many failed attempts from ${source} — retry in ${Math.ceil(wait / 1000)} s`, 'throttled');
      let reply;
      if (route === 'enroll') {
        const cred = await enrollCredential(ctx, req);
        reply = await enroll(ctx, cred, parseJsonObject(await readBody(req, bodyLimits)));
      } else {
        const peer = mtlsPeer(ctx, req, route === 'renew' ? '/renew' : '/agents');
        const body = parseJsonObject(await readBody(req, bodyLimits));
        reply = route === 'renew' ? await renew(ctx, peer, body) : await mintAgent(ctx, peer, body);
      }
      sendJson(res, 200, reply);
      metrics.signed(route);
    } catch (err) {
      const e = toHttpError(err);
      metrics.refusal(route, e.code);
      if (e.status >= 500) log(`${route} from ${source}: ${(err as Error)?.stack ?? String(err)}`);
      if (e.status !== 429) {
        await audit(ca.store.auditLog, { event: route, result: e.status >= 500 ? 'failed' : 'refused', cn: ctx.decision.cn, reason: e.code, source, detail: e.message })
          .catch((auditErr) => log(`audit.log write failed: ${(auditErr as Error).message}`));
      }
      if (e.status === 401) {
        limiter.fail(source);
        if (limiter.blockedFor(source) > 0) {
          await audit(ca.store.auditLog, { event: 'throttle', result: 'refused', source, reason: 'too_many_failures', detail: `${limits.maxFailures} failed attempts within ${limits.failureWindowMs / 1000} s; further requests get 429` })
            .catch(() => {});
        }
      }
      sendError(res, e);
      if (res.getHeader('connection') === 'close') lingerThenDestroy(req);
    }
  };
  const bodyLimits = { maxBytes: limits.maxBodyBytes, timeoutMs: limits.bodyTimeoutMs };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    metrics.observe(path, res);
    if (path === '/metrics' && req.method === 'GET') return void metrics.serveMtls(req, res);
    const post = POST_ROUTES[path];
    if (post && req.method === 'POST') return void handlePost(post, req, res);
    if ((req.method === 'GET' || req.method === 'HEAD') && PUBLIC_PATHS.includes(path)) {
      return void publicGet(ca, path, res).catch((err) => { log(`GET ${path}: ${(err as Error).message}`); sendError(res, toHttpError(err)); });
    }
    const known = post || PUBLIC_PATHS.includes(path);
    sendError(res, known ? new RivetError(`${req.method} is not allowed on ${path}`, 'method') : new RivetError(`no endpoint ${path}`, 'not_found'));
  });
  server.on('tlsClientError', () => { /* failed handshakes are the client's problem; nothing to record */ });

  const tlsWatch = watchServerTls(server, {
    files: Object.values(files), initial: material, load: () => loadTlsMaterial(files), domain: ca.domain, pollMs: limits.reloadCheckMs,
    onReload: () => log('TLS material changed on disk — reloaded (certificate, chain, CRLs)'),
    onError: (err) => log(`TLS reload skipped, keeping the previous material: ${err.message}`),
    logger: (e) => log(`cut the connection from ${e.cn ? JSON.stringify(e.cn) : 'a client'} (${e.remote ?? '?'}): ${e.reason}`),
  });
  const reload = tlsWatch.reload;
  const refresh = async () => {
    try {
      const r = await refreshCrls(ca);
      if (r.refreshed.length) log(`re-signed CRLs: ${r.refreshed.join(', ')}`);
    } catch (err) { log(`CRL refresh failed (will retry): ${(err as Error).message}`); }
    await reload();
  };
  const timers = [setInterval(() => void refresh(), limits.crlRefreshMs),
    setInterval(() => limiter.sweep(), limits.failureWindowMs), setInterval(() => throttle.sweep(), limits.issuance.perIdentity.windowMs)];
  for (const t of timers) t.unref();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => { server.off('error', reject); resolve(); });
  });
  const address = server.address() as AddressInfo;
  const metricsServer = opts.metricsListen ? await metrics.listen(opts.metricsListen.host, opts.metricsListen.port) : undefined;
  return {
    server, port: address.port, host: address.address, reload, metricsPort: metricsServer?.port,
    close: () => new Promise<void>((resolve) => {
      for (const t of timers) clearInterval(t);
      tlsWatch.stop();
      metricsServer?.server.close();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/**
 * After refusing a request whose body we did not read, give the client a moment to read the
 * reply (an immediate reset can discard it), then drop the connection.
 */
function lingerThenDestroy(req: IncomingMessage): void {
  setTimeout(() => req.socket.destroy(), 2_000).unref();
}
