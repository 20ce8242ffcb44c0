// Group commit for the enrollment service. Each request does its own checks before the queue,
// then waits with whatever else arrives in the same burst; a group is checked, signed and recorded
// in one lock hold, with one `openssl ca` run for all the requests whose CSRs carry their profile
// (lib/ops/issue.ts signLeaves). Under load that turns one process start, one lock handoff and one
// audit datasync per request into one per group.
//
// (Signing outside the lock in a scratch database, as the roster does, so that two groups could
// overlap, measured slower here: 134/s against 172/s for /enroll on 2 cores. Copying a group into
// the live database costs an fsync per certificate, and the cores are busy anyway with TLS.)
//
// Inside a group each request first re-checks, under the lock, what may have changed (its token,
// its certificate's status, revoked keys, names). Two requests that touch the same identity, token
// or DNS name never share a group: the later one waits for the next, so it sees the first one's
// result exactly as if the two had come one after the other.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Ca } from '../ca/handle.ts';
import { GroupCommit } from '../core/group-commit.ts';
import { signLeaves, type Issued, type LeafRequest } from '../ops/issue.ts';
import { leafValidity } from '../sign/validity.ts';
import { allRows, nameIndexLocked, type DbRow } from '../policy/live-names.ts';
import { NameIndex, refuseConflict } from '../policy/name-ownership.ts';
import { parseCertPem, publicKeyDer, type CertInfo } from '../x509/cert.ts';
import { auditAll, type AuditEvent } from '../sys/audit.ts';
import { leafProfile } from '../sign/profile.ts';
import { transaction } from '../sign/transaction.ts';
import { issuerOfDir, revokeLocked, type RevokeTarget } from '../sign/revocation.ts';

/**
 * What a group's checks and replies read, read once per group rather than once per request (the
 * database grows with every certificate; 30 requests each parsing it were most of a group's time).
 * Valid only inside one lock hold, before its signing run changes the database.
 */
export class GroupReads {
  private rowsRead?: Promise<DbRow[]>;
  private namesRead?: Promise<NameIndex>;
  private readonly certs = new Map<string, Promise<CertInfo | undefined>>();
  private files = new Map<string, Promise<string>>();

  constructor(readonly ca: Ca) {}

  /** Every row of every intermediate's database (current and previous), with its directory. */
  rows(): Promise<DbRow[]> {
    this.rowsRead ??= allRows(this.ca);
    return this.rowsRead;
  }

  /** The ownership index of live node names (lib/policy/name-ownership.ts). */
  names(): Promise<NameIndex> {
    this.namesRead ??= this.rows().then((rows) => nameIndexLocked(this.ca, rows));
    return this.namesRead;
  }

  /** The certificate openssl kept in newcerts/; undefined if unreadable. */
  cert(dir: string, serial: string): Promise<CertInfo | undefined> {
    const file = path.join(dir, 'newcerts', `${serial}.pem`);
    let info = this.certs.get(file);
    if (!info) {
      info = fsp.readFile(file, 'utf8').then(
        (pem) => parseCertPem(pem),
        () => undefined,
      );
      this.certs.set(file, info);
    }
    return info;
  }

  /** The public key (SPKI DER) of that certificate; undefined if unreadable. */
  async certKey(dir: string, serial: string): Promise<Buffer | undefined> {
    const info = await this.cert(dir, serial);
    return info ? publicKeyDer(info.x509) : undefined;
  }

  text(file: string): Promise<string> {
    let text = this.files.get(file);
    if (!text) {
      text = fsp.readFile(file, 'utf8');
      this.files.set(file, text);
    }
    return text;
  }

  /** After the group changed files (a revocation re-signed the CRL): read them again. */
  forgetFiles(): void {
    this.files = new Map();
  }
}

/** What a job's check decided: reuse an existing certificate, or sign and then revoke these. */
export type CheckResult = void | { reuse?: Issued; supersede?: ReadonlyArray<{ dir: string; serial: string }> };

export type SigningJob<R> = LeafRequest & {
  /** Names this job claims (`cn:…`, `dns:…`, `token:…`): no two jobs of a group share one. */
  claims: readonly string[];
  /** Re-checks under the lock; throws (a RivetError) to refuse before anything is signed. */
  checkLocked: (reads: GroupReads) => Promise<CheckResult>;
  /** After signing (or reusing), under the lock: spend the token, build the reply and the audit line. */
  finishLocked: (issued: Issued, reads: GroupReads, reused: boolean) => Promise<{ reply: R; audit: AuditEvent }>;
};

const LATER = Symbol('in the next group');

/** A group waits while requests keep arriving 4 ms apart, for at most 20 ms. */
const GATHER = { quietMs: 4, maxMs: 20 };
type Outcome = { value: unknown } | { error: unknown } | typeof LATER;

export class SigningQueue {
  private readonly groups: GroupCommit<SigningJob<unknown>, Outcome>;

  constructor(
    private readonly ca: Ca,
    maxGroup = 64,
  ) {
    this.groups = new GroupCommit(
      (jobs) =>
        transaction(ca, `sign ${jobs.length} certificate${jobs.length === 1 ? '' : 's'}`, () =>
          this.signGroupLocked(jobs),
        ),
      { maxGroup, gather: GATHER },
    );
  }

  async sign<R>(job: SigningJob<R>): Promise<R> {
    for (;;) {
      const outcome = await this.groups.submit(job as SigningJob<unknown>);
      if (outcome === LATER) continue;
      if ('error' in outcome) throw outcome.error;
      return outcome.value as R;
    }
  }

  private async signGroupLocked(jobs: SigningJob<unknown>[]): Promise<Outcome[]> {
    const outcomes: Outcome[] = new Array(jobs.length);
    const claimed = new Set<string>();
    const reads = new GroupReads(this.ca);
    const names = await reads.names();
    // Names this group is about to sign: a later job overlapping one waits for the next group,
    // where the first is either recorded (and refused against) or failed (and free).
    const pending = new NameIndex(this.ca.domain);
    const accepted: number[] = [];
    const reused = new Map<number, Issued>();
    const supersede = new Map<number, ReadonlyArray<{ dir: string; serial: string }>>();
    for (const [i, job] of jobs.entries()) {
      if (job.claims.some((c) => claimed.has(c))) {
        outcomes[i] = LATER;
        continue;
      }
      try {
        const plan = await job.checkLocked(reads);
        if (plan?.reuse) {
          reused.set(i, plan.reuse);
          for (const c of job.claims) claimed.add(c);
          continue;
        }
        if (job.id.kind === 'node') {
          const p = leafProfile(job.id, this.ca.domain, job.sans);
          refuseConflict(names.conflict(job.id.nodeId, p.dns, p.ips));
          if (pending.conflict(job.id.nodeId, p.dns, p.ips)) {
            outcomes[i] = LATER;
            continue;
          }
          pending.add(job.id.nodeId, 'pending', p.dns, p.ips);
        }
        for (const c of job.claims) claimed.add(c);
        if (plan?.supersede?.length) supersede.set(i, plan.supersede);
        accepted.push(i);
      } catch (error) {
        outcomes[i] = { error };
      }
    }
    const issued = accepted.length
      ? await signLeaves(
          this.ca,
          await this.ca.store.current(),
          accepted.map((i) => jobs[i]!),
          leafValidity(),
        )
      : [];
    // Each successful renewal supersedes what it replaces: one database write and one CRL for the group.
    const targets: RevokeTarget[] = [];
    const superseded: AuditEvent[] = [];
    for (const [k, i] of accepted.entries()) {
      const result = issued[k];
      if (!result || result instanceof Error) continue;
      const mine: string[] = [];
      for (const t of supersede.get(i) ?? []) {
        const issuer = await issuerOfDir(this.ca, t.dir);
        if (issuer) {
          targets.push({ issuer, serial: t.serial });
          mine.push(t.serial);
        }
      }
      if (mine.length)
        superseded.push({
          event: 'supersede',
          result: 'ok',
          cn: result.cn,
          serials: mine,
          reason: 'superseded',
          detail: `by serial ${result.serial}: at most 2 live certificates per identity`,
        });
    }
    if (targets.length) {
      await revokeLocked(this.ca, targets, 'superseded');
      reads.forgetFiles();
    }
    const events: AuditEvent[] = [];
    const finish = async (i: number, result: Issued, wasReused: boolean) => {
      try {
        const done = await jobs[i]!.finishLocked(result, reads, wasReused);
        outcomes[i] = { value: done.reply };
        events.push(done.audit);
      } catch (error) {
        outcomes[i] = { error };
      }
    };
    for (const [k, i] of accepted.entries()) {
      const result = issued[k]!;
      if (result instanceof Error) {
        outcomes[i] = { error: result };
        continue;
      }
      await finish(i, result, false);
    }
    for (const [i, result] of reused) await finish(i, result, true);
    events.push(...superseded);
    // One append and one datasync for the group; a reply leaves only once its line is on disk.
    await auditAll(this.ca.store.auditLog, events);
    return outcomes;
  }
}
