// GET /metrics (Prometheus text format, by prom-client): what the enrollment service did — signed
// and refused requests by route and code, request latency — and what will break soon, read from
// the CA dir at each scrape: every CRL's nextUpdate, the end of the root-CRL series, the notAfter
// of every live identity, certificates by status, the last CRL push to each node. Read at scrape
// time because revocations, renewals and pushes also happen in other processes (the CLI, cron).
//
// Where: on the service's HTTPS listener for callers with a verified mesh certificate (the names
// and expiry dates of every identity are not for anyone who can reach the port), and, with
// `serve --metrics-listen`, on a plain-HTTP listener of its own for a Prometheus on loopback or a
// monitoring network.
import http from 'node:http';
import fsp from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Ca } from '../ca/handle.ts';
import { readDb, isLive } from '../ca/database.ts';
import { parseCrlBundle } from '../x509/crl.ts';
import { identityFromCommonName } from '../core/identity.ts';
import { readRootCrlSeries, seriesEnd } from '../sign/root-crl-series.ts';
import { readPushStatus } from '../ops/push-status.ts';
import { sendError, toHttpError } from '../mesh/http.ts';
import { verifiedPeer } from './auth.ts';

const ROUTES = new Set(['/enroll', '/renew', '/agents', '/crl.pem', '/ca.crt', '/healthz', '/metrics']);
const seconds = (d: Date) => d.getTime() / 1000;

export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly issued = new Counter({
    name: 'rivet_ca_issued_total',
    help: 'Certificates signed by the service, by route (enroll, agent: issuance; renew: renewal)',
    labelNames: ['route'],
    registers: [this.registry],
  });
  private readonly refused = new Counter({
    name: 'rivet_ca_refused_total',
    help: 'Requests the service refused or failed, by route and error code',
    labelNames: ['route', 'code'],
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: 'rivet_ca_request_duration_seconds',
    help: 'Time from request to the end of the reply, by route',
    labelNames: ['route'],
    registers: [this.registry],
  });
  private readonly crlNext = new Gauge({
    name: 'rivet_ca_crl_next_update_timestamp_seconds',
    help: 'nextUpdate of each CRL in the published crl.pem, by issuer',
    labelNames: ['issuer'],
    registers: [this.registry],
  });
  private readonly crlNumber = new Gauge({
    name: 'rivet_ca_crl_number',
    help: 'crlNumber of each CRL in the published crl.pem, by issuer',
    labelNames: ['issuer'],
    registers: [this.registry],
  });
  private readonly seriesEnd = new Gauge({
    name: 'rivet_ca_root_crl_series_end_timestamp_seconds',
    help: 'When the last root CRL signed at a ceremony lapses: bring the root online before then',
    registers: [this.registry],
  });
  private readonly notAfter = new Gauge({
    name: 'rivet_ca_certificate_not_after_timestamp_seconds',
    help: 'Latest notAfter among the live certificates of each identity',
    labelNames: ['cn', 'kind'],
    registers: [this.registry],
  });
  private readonly byStatus = new Gauge({
    name: 'rivet_ca_certificates',
    help: 'Certificates in the databases of the live intermediates, by status',
    labelNames: ['status'],
    registers: [this.registry],
  });
  private readonly pushOk = new Gauge({
    name: 'rivet_ca_crl_push_ok',
    help: 'Whether the last CRL push to each node succeeded (1) or not (0)',
    labelNames: ['node'],
    registers: [this.registry],
  });
  private readonly pushAt = new Gauge({
    name: 'rivet_ca_crl_push_timestamp_seconds',
    help: 'When the last CRL push to each node ran',
    labelNames: ['node'],
    registers: [this.registry],
  });

  constructor(private readonly ca: Ca) {}

  /** Times a request from here to the end of its reply. */
  observe(path: string, res: ServerResponse): void {
    const stop = this.latency.startTimer({ route: ROUTES.has(path) ? path : 'other' });
    res.once('close', () => stop());
  }

  signed(route: string): void {
    this.issued.inc({ route });
  }
  refusal(route: string, code: string): void {
    this.refused.inc({ route, code });
  }

  /** The text format, with the CA-state gauges read now. */
  async text(): Promise<string> {
    await this.readState();
    return this.registry.metrics();
  }

  private async readState(now = new Date()): Promise<void> {
    const { store, domain } = this.ca;
    for (const g of [this.crlNext, this.crlNumber, this.notAfter, this.byStatus, this.pushOk, this.pushAt]) g.reset();
    for (const crl of parseCrlBundle(await fsp.readFile(store.crlBundle, 'utf8').catch(() => ''))) {
      const issuer = crl.issuerCNs[0] ?? '?';
      if (crl.nextUpdate) this.crlNext.set({ issuer }, seconds(crl.nextUpdate));
      if (crl.crlNumber !== undefined) this.crlNumber.set({ issuer }, Number(crl.crlNumber));
    }
    const series = await readRootCrlSeries(store);
    const end = series ? seriesEnd(series) : undefined;
    if (end) this.seriesEnd.set(seconds(end));
    else this.seriesEnd.reset();
    const counts = { valid: 0, revoked: 0, expired: 0 };
    const latest = new Map<string, { kind: string; at: Date }>();
    for (const issuer of await store.intermediates().catch(() => [])) {
      for (const e of await readDb(issuer.dir)) {
        counts[e.status === 'R' ? 'revoked' : isLive(e, now) ? 'valid' : 'expired']++;
        if (!isLive(e, now) || (latest.get(e.cn)?.at.getTime() ?? 0) >= e.notAfter.getTime()) continue;
        let kind = 'unknown';
        try {
          kind = identityFromCommonName(e.cn, domain).kind;
        } catch {
          /* a row outside the grammar */
        }
        latest.set(e.cn, { kind, at: e.notAfter });
      }
    }
    for (const [status, n] of Object.entries(counts)) this.byStatus.set({ status }, n);
    for (const [cn, { kind, at }] of latest) this.notAfter.set({ cn, kind }, seconds(at));
    for (const [node, s] of Object.entries(await readPushStatus(this.ca))) {
      this.pushOk.set({ node }, s.ok ? 1 : 0);
      this.pushAt.set({ node }, Date.parse(s.at) / 1000);
    }
  }

  /** GET /metrics on the service's own listener: a verified mesh client certificate is required. */
  async serveMtls(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      verifiedPeer(req, this.ca.domain);
      this.send(res, await this.text());
    } catch (err) {
      sendError(res, toHttpError(err));
    }
  }

  private send(res: ServerResponse, body: string): void {
    res.writeHead(200, {
      'content-type': this.registry.contentType,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(body);
  }

  /** `--metrics-listen`: a plain-HTTP listener serving GET /metrics only. */
  async listen(host: string, port: number): Promise<{ server: http.Server; port: number }> {
    const server = http.createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.text().then(
        (body) => this.send(res, body),
        () => {
          res.writeHead(500).end();
        },
      );
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return { server, port: (server.address() as AddressInfo).port };
  }
}
