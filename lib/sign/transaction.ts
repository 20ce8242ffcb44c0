// One transaction around every change to CA state: take the CA lock (concurrent callers wait,
// naming the holder), recover what a killed run left (lib/ca/recovery.ts), re-sign the CRLs if a
// revoke or tidy was killed between its database change and its CRL, then run the change.
import fsp from 'node:fs/promises';
import type { Ca } from '../ca/handle.ts';
import { recoverStore } from '../ca/recovery.ts';
import { withLock } from '../sys/lock.ts';
import { exists, writeAtomic } from '../sys/files.ts';
import { RivetError } from '../core/errors.ts';
import { refreshCrlsLocked } from './crl-sign.ts';

export async function transaction<T>(ca: Ca, what: string, fn: () => Promise<T>): Promise<T> {
  const { store } = ca;
  if (!(await exists(store.dir)))
    throw new RivetError(
      `CA directory ${store.dir} does not exist — run \`rivet-ca init\` or set RIVET_CA_DIR`,
      'no_ca',
    );
  return withLock(
    store.lockFile,
    what,
    async () => {
      await recoverStore(store);
      if (await exists(store.crlPendingFile)) {
        await refreshCrlsLocked(ca, { force: true });
        await fsp.rm(store.crlPendingFile, { force: true });
      }
      return fn();
    },
    { onWait: (holder) => process.stderr.write(`rivet-ca: waiting for the CA lock held by ${holder}\n`) },
  );
}

/**
 * Runs a change to the database that the CRLs must then reflect. A marker file spans both, so a
 * run killed in between leaves the marker, and the next transaction re-signs the CRLs first.
 */
export async function withCrlPending<T>(ca: Ca, fn: () => Promise<T>): Promise<T> {
  await writeAtomic(ca.store.crlPendingFile, `${process.pid}\n`, 0o600);
  const result = await fn();
  await fsp.rm(ca.store.crlPendingFile, { force: true });
  return result;
}
