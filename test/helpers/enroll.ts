// Enrollment-service test helpers: a fresh CA with a running service on 127.0.0.1:0, CSRs made by
// the real openssl, and a small HTTPS client that can present a client cert and pick its source
// address. Every service started here is closed by the test that started it.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { execa } from 'execa';
import type { Ca } from '../../lib/ca/handle.ts';
import { nodeId } from '../../lib/core/identity.ts';
import { issueWithNewKey, signCsrFor } from '../../lib/ops/operator-issue.ts';
import { leafValidity } from '../../lib/sign/validity.ts';
import { revoke } from '../../lib/ops/revoke.ts';
import { readDb } from '../../lib/ca/database.ts';
import { commonName, fileStem, type Identity } from '../../lib/core/identity.ts';
import type { San } from '../../lib/core/san.ts';
import { DAY_MS } from '../../lib/core/duration.ts';
import { DEFAULT_SAN_CIDRS, parseCidrs } from '../../lib/core/san.ts';
import { startEnrollService, type EnrollService, type Limits, type ServiceOptions } from '../../lib/service/server.ts';
import { freshCa, snapshot, tempDir } from './ca.ts';

export const SECRET = 'correct horse battery staple';

export type Fixture = { ca: Ca; service: EnrollService; chain: string; work: string; close: () => Promise<void> };

/** A CA with ct110's node cert and startEnrollService on 127.0.0.1:0; `extra` adds service options (e.g. metricsListen). */
export async function enrollFixture(
  limits: Partial<Limits> = {},
  extra: Partial<ServiceOptions> = {},
): Promise<Fixture> {
  const ca = await freshCa();
  await issueWithNewKey(ca, { kind: 'node', nodeId: nodeId('ct110') });
  const service = await startEnrollService({
    ca,
    sanCidrs: parseCidrs(DEFAULT_SAN_CIDRS),
    secret: SECRET,
    host: '127.0.0.1',
    port: 0,
    tlsCert: ca.store.issued('ct110', 'crt'),
    tlsKey: ca.store.issued('ct110', 'key'),
    limits,
    ...extra,
    log: (line) => {
      if (process.env.RIVET_TEST_LOG) process.stderr.write(`service: ${line}\n`);
    },
  });
  return {
    ca,
    service,
    chain: fs.readFileSync(ca.store.chainFile, 'utf8'),
    work: await tempDir('rivet-enroll-'),
    close: () => service.close(),
  };
}

export type EnrolledNode = { cert: string; key: Buffer; keyFile: string };

/** Enrolls `cn` with the bootstrap secret; returns its certificate and key, ready for mTLS calls. */
export async function enrollNode(fx: Fixture, cn: string): Promise<EnrolledNode> {
  const { key, csr } = await newCsr(fx.work, cn);
  const r = await call(fx, 'POST', '/enroll', { bearer: SECRET, body: { csr } });
  if (r.status !== 200) throw new Error(`enrolling ${cn} failed: ${r.status} ${r.text}`);
  return { cert: r.json.cert, key: fs.readFileSync(key), keyFile: key };
}

/** A new P-256 key (file path) and a CSR for `cn`; or a CSR for an existing key. */
export async function newCsr(work: string, cn: string, keyFile?: string): Promise<{ key: string; csr: string }> {
  const key =
    keyFile ?? path.join(work, `${cn.replace(/[^a-z0-9.@-]/g, '_')}-${Math.random().toString(16).slice(2)}.key`);
  const keyArgs = keyFile
    ? ['-key', keyFile]
    : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc', '-keyout', key];
  const r = await execa('openssl', ['req', '-new', ...keyArgs, '-subj', `/CN=${cn}`], {
    env: { OPENSSL_CONF: '/dev/null' },
  });
  return { key, csr: String(r.stdout) };
}

export type CallOptions = {
  body?: unknown;
  raw?: string | Buffer;
  bearer?: string;
  /** A whole Authorization header, for malformed ones. */
  authorization?: string;
  cert?: string | Buffer;
  key?: string | Buffer;
  localAddress?: string;
};
export type CallResult = {
  status: number;
  json: any;
  text: string;
  headers: Record<string, string | string[] | undefined>;
};

/** One HTTPS request to the service, verifying the server as ct110.mesh against our chain. */
export function call(fx: Fixture, method: string, urlPath: string, opts: CallOptions = {}): Promise<CallResult> {
  const payload = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: fx.service.port,
        servername: 'ct110.mesh',
        method,
        path: urlPath,
        ca: fx.chain,
        agent: false,
        cert: opts.cert,
        key: opts.key,
        localAddress: opts.localAddress,
        headers: {
          ...(payload !== undefined
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
            : {}),
          ...(opts.bearer !== undefined ? { authorization: `Bearer ${opts.bearer}` } : {}),
          ...(opts.authorization !== undefined ? { authorization: opts.authorization } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, text, headers: res.headers });
        });
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('test client timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

/** CA state without the files a refusal may touch (audit.log) or transiently holds (.lock). */
export function caState(ca: Ca): Record<string, string> {
  const all = snapshot(ca.store.dir);
  delete all['audit.log'];
  delete all['.lock'];
  return all;
}

export async function auditLines(ca: Ca): Promise<Array<Record<string, unknown>>> {
  const text = await fsp.readFile(ca.store.auditLog, 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * A certificate for `keyFile`'s key as `id`, issued `ageDays` ago for 90 days (the operator path,
 * `sign --not-before`): old enough to be inside the renewal window (the last third of its life).
 * With `retire`, every other live certificate of the identity is revoked first, as if this one had
 * been its only certificate all along.
 */
export async function backdated(
  ca: Ca,
  id: Identity,
  keyFile: string,
  ageDays: number,
  opts: { sans?: readonly San[]; retire?: boolean } = {},
): Promise<string> {
  const cn = commonName(id, ca.domain);
  if (opts.retire) {
    for (const row of (await readDb(ca.store.intermediateDir)).filter((r) => r.cn === cn && r.status === 'V'))
      await revoke(ca, fileStem(id), { serial: row.serial, reason: 'superseded', nodeOnly: id.kind === 'node' });
  }
  const { csr } = await newCsr(path.dirname(keyFile), cn, keyFile);
  const out = `${keyFile}.backdated-${Math.random().toString(16).slice(2)}.crt`;
  await signCsrFor(
    ca,
    id,
    csr,
    opts.sans ?? [],
    leafValidity({ notBefore: new Date(Date.now() - ageDays * DAY_MS) }),
    out,
  );
  return fs.readFileSync(out, 'utf8');
}
