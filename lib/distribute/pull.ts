// CRL pull (DESIGN §5): the fallback for a node that missed a push — `GET <datahub>/crl.pem`,
// then the same checks as the push receiver (one code path: install.ts) before anything is installed.
//
// The connection verifies the server against the installed chain but deliberately without CRL
// checking and without a client certificate: the pull must still work when the installed CRL has
// lapsed or this node's own cert is revoked or expired, which is exactly when it is needed. That
// costs nothing, because the bundle's own signatures are what is trusted.
import fs from 'node:fs';
import { RivetError, show } from '../core/errors.ts';
import { MAX_CRL_BUNDLE_BYTES } from '../core/limits.ts';
import { installCrlBundle, type InstallResult } from './install.ts';
import { meshTlsFiles } from '../mesh/tls.ts';
import { meshRequest, type ConnectTo } from './mesh-request.ts';

export type PullCrlOptions = {
  dir: string;
  /** Base URL of the enrollment service, e.g. https://ct110.mesh:8443 (RIVET_DATAHUB_URL). */
  datahub: string;
  timeoutMs?: number;
  connectTo?: ConnectTo;
};

export async function pullCrl(opts: PullCrlOptions): Promise<InstallResult> {
  const files = meshTlsFiles(opts.dir);
  let ca: Buffer;
  try {
    ca = fs.readFileSync(files.ca);
  } catch {
    throw new RivetError(
      `cannot read ${show(files.ca)} to verify the datahub — enroll this node first (provision-ct enroll)`,
      'no_chain',
    );
  }
  const url = `${opts.datahub.replace(/\/+$/, '')}/crl.pem`;
  const tls = { ca, rejectUnauthorized: true, minVersion: 'TLSv1.2' } as const;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let res;
  try {
    res = await meshRequest(url, { tls, connectTo: opts.connectTo, timeoutMs, maxBytes: MAX_CRL_BUNDLE_BYTES });
  } catch (err) {
    throw new RivetError(
      `cannot fetch ${show(url)}: ${(err as Error).message} — is the datahub up and RIVET_DATAHUB_URL right?`,
      'pull_failed',
    );
  }
  if (res.status !== 200)
    throw new RivetError(`fetching ${show(url)} answered HTTP ${res.status} — expected the CRL bundle`, 'pull_failed');
  // The chain too: after rotate-intermediate or tidy, the bundle verifies only against the new one.
  const chain = await meshRequest(url.replace(/crl\.pem$/, 'ca.crt'), {
    tls,
    connectTo: opts.connectTo,
    timeoutMs,
  }).catch(() => undefined);
  // A refusal (an older bundle, a chain that would drop a CA in use, a CRL dated ahead of this
  // clock) keeps what is installed and is recorded for `provision-ct status`; the timer's next
  // pull tries again.
  return installCrlBundle(opts.dir, res.body, {
    ...(chain?.status === 200 ? { chain: chain.body } : {}),
    source: 'pull',
    from: opts.datahub,
  });
}
