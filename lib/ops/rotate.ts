// Intermediate rotation (DESIGN §4.1, the seed's "rotated mid-life"): generation n+1 issues from
// now on; generation n moves to intermediate/previous/<n>/ and keeps signing its CRL, so its
// leaves verify (and can be revoked) until they expire. Once none is left unexpired, `tidy`
// retires it to intermediate/retired/<n>/: out of chain.pem and crl.pem, its key deleted.
//
// Crash safety. The current intermediate lives at fixed paths (intermediate/int.crt, …), so the
// switch cannot be one rename. Instead:
//   build   the new intermediate in a temp dir           (killed: recovery deletes it; old stays)
//   commit  rename it to intermediate.next/              (from here on recovery rolls forward, and
//                                                          store.current() answers with it)
//   then    hard-link old → previous/<n> (temp + rename), clear old from intermediate/, link new
//           into intermediate/ (`generation` first), rewrite chain.pem and crl.pem, and finally
//           rename intermediate.next away — after which intermediate/ is the current one.
// Every step is idempotent and each leaves a complete current intermediate in view (the new one
// in intermediate.next/ until the last rename, intermediate/ after it); every transaction finishes a
// half-done rotation (lib/ca/rotation-recovery.ts) before anything else runs.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { X509Certificate } from 'node:crypto';
import type { Ca } from '../ca/handle.ts';
import type { Issuer } from '../ca/store.ts';
import { buildIntermediate } from './hierarchy.ts';
import { requireRootKey } from './hierarchy.ts';
import { writeBundleLocked, writeChainLocked } from '../ca/published.ts';
import { refreshCrlsLocked } from '../sign/crl-sign.ts';
import { transaction } from '../sign/transaction.ts';
import { resumeRotation, syncTree } from '../ca/rotation-recovery.ts';
import { crashPoint } from '../sys/crash-point.ts';
import { readDb } from '../ca/database.ts';
import { ensureDir, exists, syncDir } from '../sys/files.ts';
import { audit } from '../sys/audit.ts';
import type { KeyType } from '../core/keys.ts';
import type { Cidr } from '../core/san.ts';
import {
  nameConstraintChoice,
  readNameConstraintChoice,
  type NameConstraintFlags,
} from '../policy/name-constraints.ts';
import { signRootCrlSeriesLocked } from '../sign/root-crl-series.ts';
import { RivetError } from '../core/errors.ts';

export type RotateResult = { generation: number; previous: number; cert: X509Certificate; serial: string };

/**
 * `names`: the flags given; what they leave open comes from the current intermediate's recorded
 * choice (a CA from before name constraints gets the default: constrained).
 */
export async function rotateIntermediate(
  ca: Ca,
  opts: { keyType?: KeyType; names?: NameConstraintFlags; sanCidrs?: readonly Cidr[] } = {},
): Promise<RotateResult> {
  const { store } = ca;
  await store.current(); // says how to make the first one when there is none
  await requireRootKey(ca, 'rotate-intermediate');
  return transaction(ca, 'rotate-intermediate', async () => {
    const old = await store.current();
    const generation = old.generation + 1;
    for (const taken of [
      path.join(store.previousDir, String(old.generation)),
      path.join(store.retiredDir, String(old.generation)),
    ]) {
      if (await exists(taken))
        throw new RivetError(
          `${taken} already exists — intermediate ${old.generation} cannot be rotated out twice; move it aside, then retry`,
          'rotation',
        );
    }
    const names = nameConstraintChoice(opts.names ?? {}, await readNameConstraintChoice(old.dir));
    const built = await buildIntermediate(ca, generation, { keyType: opts.keyType, names, sanCidrs: opts.sanCidrs });
    await syncTree(built.stage);
    crashPoint('rotate-built');
    await fsp.rename(built.stage, store.nextDir); // the commit point
    await syncDir(store.dir);
    crashPoint('rotate-committed');
    await resumeRotation(store);
    await signRootCrlSeriesLocked(ca); // a ceremony: the root's CRLs for the years ahead
    await writeBundleLocked(ca);
    await refreshCrlsLocked(ca);
    await audit(store.auditLog, {
      event: 'rotate-intermediate',
      result: 'ok',
      cn: `Rivet Intermediate CA ${generation}`,
      serial: built.serial,
      detail: `previous ${old.generation}`,
    });
    return { generation, previous: old.generation, cert: built.cert, serial: built.serial };
  });
}

/**
 * Retires every previous intermediate with no unexpired leaf left (revoked ones included, so a
 * revocation stays published until the certificate expires). Caller holds the CA lock.
 */
export async function retireDrainedLocked(ca: Pick<Ca, 'store'>, now = new Date()): Promise<number[]> {
  const { store } = ca;
  const retired: number[] = [];
  const older = (await store.intermediates()).slice(1).filter((i: Issuer) => path.dirname(i.dir) === store.previousDir);
  for (const issuer of older) {
    const unexpired = (await readDb(issuer.dir)).filter((e) => e.notAfter.getTime() > now.getTime());
    if (unexpired.length) continue;
    const to = path.join(store.retiredDir, String(issuer.generation));
    if (await exists(to)) throw new RivetError(`${to} already exists — move it aside, then rerun tidy`, 'rotation');
    await ensureDir(store.retiredDir);
    await fsp.rename(issuer.dir, to);
    await syncDir(store.previousDir);
    await syncDir(store.retiredDir);
    // Nothing it could still sign is wanted: no leaves, and it is leaving every chain.
    await fsp.rm(path.join(to, 'int.key'), { force: true });
    retired.push(issuer.generation);
  }
  if (retired.length) {
    await writeChainLocked(ca);
    await writeBundleLocked(ca);
  }
  return retired;
}
