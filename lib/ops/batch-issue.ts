// Batch issuance (`issue --roster`, DESIGN §4.2 "as fast as the machine allows"). One `openssl ca`
// per certificate under the CA lock caps a roster at one signature per process start (~10 ms
// each on a 2-core machine); here the starts come from xargs, not forks of this process, and the
// slow part leaves the lock:
//   1. parallel workers take chunks of the list; each key and CSR is made by `openssl req`, the
//      runs of a chunk started by one xargs (lib/sign/csr.ts newKeysAndCsrs; key file 0600 from
//      creation, the CSR carrying the profile's subject and SAN), and the chunk is signed by the
//      real `openssl ca` (one run per certificate, each with its own random serial, started by one
//      xargs: lib/sign/signer.ts signCsrBatch), same profile templates, against the worker's private
//      scratch database, each certificate checked against its request (lib/ops/issue.ts
//      signLeavesScratch);
//   2. signed certificates are group-committed: one lock hold records a whole group in the live
//      database — the index rows openssl itself wrote in the scratch database, appended with one
//      atomic index.txt write (lib/ca/database.ts recordScratchLocked) — then puts keys and certificates in
//      place.
// Crash safety follows the single path: index.txt.new, newcerts copies, then the rename of
// index.txt.new to index.txt (the commit point, as openssl ca does it), then key before
// certificate in issued/. A crash before the commit leaves temp files, index.txt.new and newcerts
// copies the database lacks, all removed by the next lock holder (store.ts recovery); after it,
// what single issuance leaves (a row whose files usableIssued() does not trust, so --if-missing
// and renew repair it).
// Length (over 250 lines once formatted): one pipeline (keys, scratch signing, commit, placing
// files) whose crash-safety argument spans its stages; split, the invariant would span files.
import fsp from 'node:fs/promises';
import os from 'node:os';
import { type Ca, issuerCert } from '../ca/handle.ts';
import { fileStem, type Identity, type NodeId } from '../core/identity.ts';
import { nameIndexLocked, sharedDetail } from '../policy/live-names.ts';
import { leafProfile } from '../sign/profile.ts';
import { initIssuerDb, withTempDir } from '../sign/signer.ts';
import { createExclusive, KEY_MODE, PUBLIC_MODE, stageFile, syncDir, tempPathFor } from '../sys/files.ts';
import { newKeysAndCsrs } from '../sign/csr.ts';
import type { KeyType } from '../core/keys.ts';
import { auditAll } from '../sys/audit.ts';
import { readDb, isLive, recordScratchLocked } from '../ca/database.ts';
import { RivetError, UsageError } from '../core/errors.ts';
import type { San } from '../core/san.ts';
import type { Issuer } from '../ca/store.ts';
import { signLeavesScratch, type LeafRequest, type NameOverride, type ScratchIssued } from './issue.ts';
import { usableIssued, type OperatorResult } from './operator-issue.ts';
import { withinIssuer, type Validity } from '../sign/validity.ts';
import type { NameConflict } from '../policy/name-ownership.ts';
import { GroupCommit } from '../core/group-commit.ts';
import { transaction } from '../sign/transaction.ts';

export type BatchItem = { id: Identity; sans: readonly San[]; keyType?: KeyType };
export type BatchOptions = NameOverride & {
  validity: Validity;
  ifMissing?: boolean;
  force?: boolean;
  event?: string;
  concurrency?: number;
  /** Called once per item as soon as its outcome is final (committed, skipped or failed). */
  onOutcome?: (index: number, outcome: OperatorResult | Error) => void;
};

type Signed = ScratchIssued & { stem: string; certPath: string; keyPath: string; tmpKey: string; node?: NodeId };

type Pending = {
  index: number;
  id: Identity;
  sans: readonly San[];
  keyType: KeyType;
  stem: string;
  certPath: string;
  keyPath: string;
  tmpKey: string;
};
type Prepared = LeafRequest & Pending;

/** Records a group in the live database and puts its files in place; caller holds the CA lock. */
async function commitLocked(
  ca: Ca,
  issuer: Issuer,
  group: Signed[],
  opts: BatchOptions,
): Promise<Array<OperatorResult | Error>> {
  const now = await ca.store.current();
  if (now.dir !== issuer.dir || now.generation !== issuer.generation) {
    return group.map(
      () =>
        new RivetError(
          'the intermediate changed during the batch (rotate-intermediate) — run the roster again',
          'rotated',
        ),
    );
  }
  const out: Array<OperatorResult | Error | Signed> = [];
  const keep: Signed[] = [];
  const shared = new Map<string, NameConflict[]>();
  const names = await nameIndexLocked(ca);
  for (const s of group) {
    // Re-checked under the lock: another process may have issued the same identity meanwhile.
    const existing = await usableIssued(ca, s.certPath, s.keyPath);
    const conflicts = s.node ? names.conflicts(s.node, s.info.dns, s.info.ips) : [];
    if (conflicts.length && !opts.allowSharedName) out.push(new UsageError(conflicts[0]!.message, 'name_taken'));
    else if (existing && opts.ifMissing)
      out.push({ skipped: true, cn: s.cn, serial: existing.serial, certPath: s.certPath, notAfter: existing.notAfter });
    else if (existing && !opts.force)
      out.push(
        new UsageError(
          `${s.cn} already has a valid certificate (serial ${existing.serial}) — use --if-missing or --force`,
          'exists',
        ),
      );
    else {
      keep.push(s);
      out.push(s);
      if (s.node) names.add(s.node, s.serial, s.info.dns, s.info.ips); // the group's later items see it
      if (conflicts.length) shared.set(s.serial, conflicts);
    }
  }
  const duplicates = await recordScratchLocked(issuer.dir, keep);
  const recorded = keep.filter((s) => !duplicates.has(s.serial));
  if (recorded.length) {
    const certs = await Promise.all(recorded.map((s) => stageFile(s.certPath, s.certPem, PUBLIC_MODE)));
    for (const s of recorded) await fsp.rename(s.tmpKey, s.keyPath); // key before certificate, as in issueWithNewKey
    for (const [i, s] of recorded.entries()) await fsp.rename(certs[i]!, s.certPath);
    await syncDir(ca.store.issuedDir);
    await auditAll(
      ca.store.auditLog,
      recorded.map((s) => ({
        event: opts.event ?? 'issue',
        result: 'ok' as const,
        cn: s.cn,
        serial: s.serial,
        detail: sharedDetail(shared.get(s.serial) ?? []),
      })),
    );
  }
  return out.map((o) => {
    if (o instanceof Error || 'skipped' in o) return o;
    if (duplicates.has(o.serial))
      return new RivetError(`serial ${o.serial} is already in the database — nothing recorded; run again`, 'serial');
    const { cn, serial, certPem, info, issuer: by, certPath, keyPath } = o as Signed;
    return { cn, serial, certPem, info, issuer: by, certPath, keyPath };
  });
}

/**
 * Issues every item with a new key. Outcomes come back in item order; one item failing does not
 * stop the others. Usage errors in the items themselves are the caller's to catch beforehand.
 */
export async function issueBatch(
  ca: Ca,
  items: readonly BatchItem[],
  opts: BatchOptions,
): Promise<Array<OperatorResult | Error>> {
  const issuer = await ca.store.current();
  const issuerX509 = await issuerCert(issuer);
  withinIssuer(issuerX509, opts.validity); // refuses before any key is made; signLeaves applies it
  await ca.store.ensureLayout();
  const outcomes: Array<OperatorResult | Error> = new Array(items.length);
  const settle = (i: number, o: OperatorResult | Error) => {
    outcomes[i] = o;
    opts.onOutcome?.(i, o);
  };
  const committer = new GroupCommit<Signed, OperatorResult | Error>((group) =>
    transaction(ca, `${opts.event ?? 'issue'} ${group.length} certificates`, () =>
      commitLocked(ca, issuer, group, opts),
    ),
  );
  // Cheap pre-check without the lock, so a re-run of a roster skips what it already issued.
  const live = new Set((await readDb(issuer.dir)).filter((e) => isLive(e)).map((e) => e.serial));

  // Workers take chunks of the list: a key and CSR per item, then one openssl run signs the chunk in
  // the worker's scratch database while the previous chunk commits in the background.
  const chunkSize = Math.max(
    1,
    Math.min(CHUNK, Math.ceil(items.length / Math.max(1, opts.concurrency ?? os.availableParallelism()))),
  );
  let next = 0;
  const worker = () =>
    withTempDir(async (scratchDir) => {
      await initIssuerDb(scratchDir);
      while (next < items.length) {
        const start = next;
        const end = Math.min(items.length, start + chunkSize);
        next = end; // claimed before the first await: the other workers take the chunks after it
        const pending: Pending[] = [];
        for (let i = start; i < end; i++) {
          const p = await claimKeyFile(ca, items[i]!, i, live, opts, settle);
          if (p) pending.push(p);
        }
        // The chunk's keys and CSRs from one xargs (lib/sign/csr.ts newKeysAndCsrs), not a fork each.
        const made = await newKeysAndCsrs(
          pending.map((p) => ({ keyPath: p.tmpKey, type: p.keyType, subject: leafProfile(p.id, ca.domain, p.sans) })),
        ).catch((err: Error) => pending.map(() => err));
        const prepared: Prepared[] = [];
        for (const [k, p] of pending.entries()) {
          const m = made[k]!;
          if (m instanceof Error) {
            await fsp.rm(p.tmpKey, { force: true });
            settle(p.index, m);
            continue;
          }
          prepared.push({ ...p, csrPem: m.csrPem, publicKey: m.publicKey });
        }
        const signed = await signLeavesScratch(ca, issuer, scratchDir, prepared, opts.validity).catch((err: Error) =>
          prepared.map(() => err),
        );
        for (const [k, p] of prepared.entries()) {
          const s = signed[k]!;
          if (s instanceof Error) {
            await fsp.rm(p.tmpKey, { force: true });
            settle(p.index, s);
            continue;
          }
          void committer
            .submit({
              ...s,
              stem: p.stem,
              certPath: p.certPath,
              keyPath: p.keyPath,
              tmpKey: p.tmpKey,
              node: p.id.kind === 'node' ? p.id.nodeId : undefined,
            })
            .then(
              (o) => settle(p.index, o),
              (err: Error) => settle(p.index, err),
            )
            .finally(() => fsp.rm(p.tmpKey, { force: true }));
        }
      }
    });
  const n = Math.max(1, Math.min(opts.concurrency ?? os.availableParallelism(), Math.ceil(items.length / chunkSize)));
  // Every worker finishes and every submitted group commits before we return, even if one worker
  // failed outright: nothing may still be writing after issueBatch has answered.
  const ran = await Promise.allSettled(Array.from({ length: n }, worker));
  await committer.drain();
  const failed = ran.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return outcomes;
}

/** Certificates per `openssl ca` run: big enough to amortise its start, small enough to pipeline. */
const CHUNK = 32;
/** Skips or refuses an item already issued; else claims its key's temp file (0600 from creation). */
async function claimKeyFile(
  ca: Ca,
  item: BatchItem,
  index: number,
  live: ReadonlySet<string>,
  opts: BatchOptions,
  settle: (i: number, o: OperatorResult | Error) => void,
): Promise<Pending | undefined> {
  const stem = fileStem(item.id);
  const certPath = ca.store.issued(stem, 'crt');
  const keyPath = ca.store.issued(stem, 'key');
  const tmpKey = tempPathFor(keyPath);
  try {
    const existing = await usableIssued(ca, certPath, keyPath);
    if (existing && live.has(existing.serial)) {
      if (opts.ifMissing) {
        settle(index, {
          skipped: true,
          cn: existing.subjectCNs[0] ?? stem,
          serial: existing.serial,
          certPath,
          notAfter: existing.notAfter,
        });
        return undefined;
      }
      if (!opts.force) {
        settle(
          index,
          new UsageError(
            `${stem} already has a valid certificate (serial ${existing.serial}, until ${existing.notAfter.toISOString().slice(0, 10)}) — use --if-missing, or --force to replace it`,
            'exists',
          ),
        );
        return undefined;
      }
    }
    await createExclusive(tmpKey, KEY_MODE);
    return { index, id: item.id, sans: item.sans, keyType: item.keyType ?? 'ec-p256', stem, certPath, keyPath, tmpKey };
  } catch (err) {
    await fsp.rm(tmpKey, { force: true });
    settle(index, err as Error);
    return undefined;
  }
}
