// `rivet-ca serve` (DESIGN §4.7): the HTTPS enrollment service. TLS always; a client certificate
// is requested at the handshake but required per route, because /enroll callers do not have one
// yet. Every decision lands in audit.log; failed authentication is throttled per source
// (limiter.ts); connections are capped and timed (connections.ts).
// Length (over 250 lines once formatted): the request pipeline read top to bottom (routing,
// limits, logging, metrics, reload); its parts live in connections.ts, limiter.ts, routes.ts.
import https from 'node:https';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Ca } from '../ca/handle.ts';
import type { Cidr } from '../core/san.ts';
import { audit } from '../sys/audit.ts';
import { parseJsonObject, readBody, sendError, sendJson, toHttpError } from '../mesh/http.ts';
import { FailureLimiter } from './limiter.ts';
import { sourceKey } from '../policy/rate-limit.ts';
import { guardConnections, type ConnectionStats } from './connections.ts';
import {
  enroll,
  enrollCredential,
  mintAgent,
  mtlsPeer,
  presentedCredential,
  renew,
  type Reply,
  type RouteContext,
} from './routes.ts';
import { loadTlsMaterial, tlsFiles, type TlsFiles } from './tls-material.ts';
import { secureContextOptions } from '../mesh/tls.ts';
import { watchServerTls } from '../mesh/watch.ts';
import { publicGet } from './public.ts';
import { SigningQueue } from './signing-queue.ts';
import { DEFAULT_RATE_LIMITS, IssuanceThrottle, type RateLimits } from './renewal-checks.ts';
import { ServiceMetrics } from './metrics.ts';
import { refreshCrls } from '../ops/crl.ts';
import { RivetError } from '../core/errors.ts';
import { checkOwnership } from '../sys/ownership.ts';
import type { HttpRefusal } from '../mesh/http.ts';
import { logTraffic } from './request-log.ts';
import { startPushRetries } from '../distribute/push-queue.ts';
import type { PushOptions } from '../distribute/push.ts';

export type Limits = {
  maxBodyBytes: number;
  bodyTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  handshakeTimeoutMs: number;
  /** From the end of the TLS handshake to the first request (Node has no timer for this gap). */
  idleTimeoutMs: number;
  /** Between requests on a kept-alive connection. */
  keepAliveTimeoutMs: number;
  /** Open connections in all (lowered to what the descriptor limit allows; connections.ts). */
  maxConnections: number;
  /** Open connections from one IPv4 address or IPv6 /64. */
  maxConnectionsPerSource: number;
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
  maxBodyBytes: 64 * 1024,
  bodyTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 5_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 512,
  maxConnectionsPerSource: 32,
  maxFailures: 10,
  failureWindowMs: 60_000,
  crlRefreshMs: 60 * 60_000,
  reloadCheckMs: 1_000,
  issuance: DEFAULT_RATE_LIMITS,
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
  /** After the service re-signed CRLs on its timer (the CLI installs them on the CA host's node dir). */
  onCrlsRefreshed?: () => Promise<void>;
  /** `--metrics-listen`: GET /metrics also on a plain-HTTP listener of its own (lib/service/metrics.ts). */
  metricsListen?: { host: string; port: number };
  /** Where failed CRL pushes are retried from (push-queue.ts); without it, serve retries none. */
  push?: PushOptions;
};

export type EnrollService = {
  server: https.Server;
  port: number;
  host: string;
  metricsPort?: number;
  reload: () => Promise<boolean>;
  connections: () => ConnectionStats;
  close: () => Promise<void>;
};

const PUBLIC_PATHS = ['/healthz', '/crl.pem', '/ca.crt'];
const POST_ROUTES: Record<string, string> = { '/enroll': 'enroll', '/renew': 'renew', '/agents': 'agent' };

export async function startEnrollService(opts: ServiceOptions): Promise<EnrollService> {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const log = opts.log ?? (() => {});
  const { ca } = opts;
  const files: TlsFiles = tlsFiles(ca, opts.tlsCert, opts.tlsKey);
  // What the service trusts comes from these directories: refuse to start on ones another user can change.
  checkOwnership(ca.store.dir, 'CA directory');
  for (const dir of new Set([path.dirname(files.cert), path.dirname(files.key)]))
    checkOwnership(dir, 'directory of the TLS certificate and key');
  await refreshCrls(ca); // never start serving with a CRL about to lapse
  const material = await loadTlsMaterial(files);
  const queue = new SigningQueue(ca);
  const throttle = new IssuanceThrottle(limits.issuance);
  const limiter = new FailureLimiter({ maxFailures: limits.maxFailures, windowMs: limits.failureWindowMs });
  const metrics = new ServiceMetrics(ca);

  const server = https.createServer({
    ...secureContextOptions(material),
    requestCert: true,
    rejectUnauthorized: false, // enforced per route: /enroll callers have no certificate yet
    handshakeTimeout: limits.handshakeTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node checks header/request deadlines on this interval (default 30 s): keep it below them.
    connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
  });

  const connections = guardConnections(server, limits, log);
  const c = connections.stats();
  log(
    `connections: at most ${c.cap} (${c.perSource} per source address or IPv6 /64; descriptor limit ${c.fdLimit}); a request must start within ${limits.idleTimeoutMs / 1000} s of the handshake`,
  );

  // Everything that refuses an attempt without I/O runs synchronously here, and a 401 is counted
  // in that same turn: of a burst from one source, exactly `maxFailures` get 401, then 429.
  const handlePost = (route: string, req: IncomingMessage, res: ServerResponse) => {
    const source = req.socket.remoteAddress ?? 'unknown';
    const key = sourceKey(source);
    const ctx: RouteContext = {
      ca,
      sanCidrs: opts.sanCidrs,
      secret: opts.secret,
      decision: { source },
      queue,
      throttle,
    };
    let release: (() => void) | undefined;
    const refuse = (err: unknown) => {
      release?.();
      const e = toHttpError(err);
      const tripped = e.status === 401 && limiter.fail(key);
      void refused(route, req, res, ctx, e, err, tripped);
    };
    try {
      const wait = limiter.blockedFor(key);
      if (wait > 0) {
        res.setHeader('retry-after', String(Math.ceil(wait / 1000)));
        throw new RivetError(
          `too many failed attempts from ${key} — retry in ${Math.ceil(wait / 1000)} s`,
          'throttled',
        );
      }
      let work: Promise<Reply>;
      if (route === 'enroll') {
        const presented = presentedCredential(ctx, req);
        // A token's verdict needs the token store: counted as a failure until it is in.
        if (presented.kind === 'token') release = limiter.hold(key);
        work = (async () =>
          enroll(ctx, await enrollCredential(ctx, presented), parseJsonObject(await readBody(req, bodyLimits))))();
      } else {
        const peer = mtlsPeer(ctx, req, route === 'renew' ? '/renew' : '/agents');
        work = (async () => {
          const body = parseJsonObject(await readBody(req, bodyLimits));
          return route === 'renew' ? renew(ctx, peer, body) : mintAgent(ctx, peer, body);
        })();
      }
      work
        .then((reply) => {
          release?.();
          sendJson(res, 200, reply);
          metrics.signed(route);
        }, refuse)
        .catch((err: Error) => log(`${route} from ${source}: could not answer: ${err.message}`));
    } catch (err) {
      refuse(err);
    }
  };

  const refused = async (
    route: string,
    req: IncomingMessage,
    res: ServerResponse,
    ctx: RouteContext,
    e: HttpRefusal,
    err: unknown,
    tripped: boolean,
  ) => {
    const { source } = ctx.decision;
    metrics.refusal(route, e.code);
    if (e.status >= 500) log(`${route} from ${source}: ${(err as Error)?.stack ?? String(err)}`);
    if (e.status !== 429) {
      await audit(ca.store.auditLog, {
        event: route,
        result: e.status >= 500 ? 'failed' : 'refused',
        cn: ctx.decision.cn,
        reason: e.code,
        source,
        detail: e.message,
      }).catch((auditErr) => log(`audit.log write failed: ${(auditErr as Error).message}`));
    }
    if (tripped) {
      await audit(ca.store.auditLog, {
        event: 'throttle',
        result: 'refused',
        source,
        reason: 'too_many_failures',
        detail: `${limits.maxFailures} failed attempts within ${limits.failureWindowMs / 1000} s from ${sourceKey(source)}; further requests get 429`,
      }).catch(() => {});
    }
    sendError(res, e);
    if (res.getHeader('connection') === 'close') lingerThenDestroy(req);
  };
  const bodyLimits = { maxBytes: limits.maxBodyBytes, timeoutMs: limits.bodyTimeoutMs };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const urlPath = (req.url ?? '/').split('?')[0]!;
    const post = POST_ROUTES[urlPath];
    metrics.observe(urlPath, res);
    if (urlPath === '/metrics' && req.method === 'GET') return void metrics.serveMtls(req, res);
    if (post && req.method === 'POST') return void handlePost(post, req, res);
    if ((req.method === 'GET' || req.method === 'HEAD') && PUBLIC_PATHS.includes(urlPath)) {
      return void publicGet(ca, urlPath, res).catch((err) => {
        log(`GET ${urlPath}: ${(err as Error).message}`);
        sendError(res, toHttpError(err));
      });
    }
    const known = post || PUBLIC_PATHS.includes(urlPath);
    sendError(
      res,
      known
        ? new RivetError(`${req.method} is not allowed on ${urlPath}`, 'method')
        : new RivetError(`no endpoint ${urlPath}`, 'not_found'),
    );
  });
  logTraffic(server, log);
  const pushes = opts.push ? startPushRetries(ca, opts.push, log) : undefined;

  const tlsWatch = watchServerTls(server, {
    files: Object.values(files),
    initial: material,
    load: () => loadTlsMaterial(files),
    domain: ca.domain,
    pollMs: limits.reloadCheckMs,
    onReload: () => log('TLS material changed on disk — reloaded (certificate, chain, CRLs)'),
    onError: (err) => log(`TLS reload skipped, keeping the previous material: ${err.message}`),
    logger: (e) =>
      log(`cut the connection from ${e.cn ? JSON.stringify(e.cn) : 'a client'} (${e.remote ?? '?'}): ${e.reason}`),
  });
  const reload = tlsWatch.reload;
  const refresh = async () => {
    try {
      const r = await refreshCrls(ca);
      if (r.refreshed.length) {
        log(`re-signed CRLs: ${r.refreshed.join(', ')}`);
        await opts.onCrlsRefreshed?.();
        void pushes?.pushAll();
      }
    } catch (err) {
      log(`CRL refresh failed (will retry): ${(err as Error).message}`);
    }
    await reload();
  };
  const timers = [
    setInterval(() => void refresh(), limits.crlRefreshMs),
    setInterval(() => limiter.sweep(), limits.failureWindowMs),
    setInterval(() => throttle.sweep(), limits.issuance.perIdentity.windowMs),
  ];
  for (const t of timers) t.unref();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const metricsServer = opts.metricsListen
    ? await metrics.listen(opts.metricsListen.host, opts.metricsListen.port)
    : undefined;
  return {
    server,
    port: address.port,
    host: address.address,
    reload,
    connections: connections.stats,
    metricsPort: metricsServer?.port,
    close: () =>
      new Promise<void>((resolve) => {
        const st = connections.stats();
        log(
          `connections: ${st.refused} refused, ${st.evicted} idle ones closed to make room, ${st.idleClosed} timed out idle`,
        );
        for (const t of timers) clearInterval(t);
        pushes?.stop();
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
