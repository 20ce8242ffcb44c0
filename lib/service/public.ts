// The unauthenticated endpoints: the chain (`/ca.crt`), the CRL bundle (`/crl.pem`) and `/healthz`.
// Static signed files, safe to serve to anyone (DESIGN §5: pull is the fallback to push).
import fsp from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import type { Ca } from '../ca/handle.ts';
import { parseCrlBundle } from '../x509/crl.ts';
import { sendJson, sendText } from '../mesh/http.ts';
import { RivetError } from '../core/errors.ts';

/** A CRL with less than this left is reported as `stale` (the service re-signs at 3 days). */
export const CRL_WARN_MS = 24 * 60 * 60_000;

export async function publicGet(ca: Ca, path: string, res: ServerResponse): Promise<void> {
  if (path === '/ca.crt')
    return sendText(res, 200, 'application/x-pem-file', await fsp.readFile(ca.store.chainFile, 'utf8'));
  if (path === '/crl.pem')
    return sendText(res, 200, 'application/x-pem-file', await fsp.readFile(ca.store.crlBundle, 'utf8'));
  if (path === '/healthz') return void health(ca, res);
  throw new RivetError(`no endpoint ${path}`, 'not_found');
}

async function health(ca: Ca, res: ServerResponse): Promise<void> {
  const now = Date.now();
  let crls;
  try {
    crls = parseCrlBundle(await fsp.readFile(ca.store.crlBundle, 'utf8'));
  } catch (err) {
    return sendJson(res, 503, {
      status: 'down',
      error: { code: 'no_crl', message: `CRL bundle unreadable: ${(err as Error).message}` },
    });
  }
  const list = crls.map((c) => ({
    issuer: c.issuerCNs[0] ?? '?',
    nextUpdate: c.nextUpdate?.toISOString() ?? null,
    crlNumber: c.crlNumber?.toString() ?? null,
  }));
  const left = Math.min(...crls.map((c) => (c.nextUpdate ? c.nextUpdate.getTime() - now : -1)));
  const status = crls.length === 0 || left <= 0 ? 'down' : left < CRL_WARN_MS ? 'stale' : 'ok';
  // An expired CRL takes every mTLS hop down (DESIGN §5): report it as an outage, not a warning.
  sendJson(res, status === 'down' ? 503 : 200, { status, crls: list });
}
