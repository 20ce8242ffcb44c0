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
import { readDb, type DbEntry } from '../ca/database.ts';
import { checkNodeNamesLocked, liveRowsByCn } from '../policy/name-ownership.ts';
import { parseCertPem, publicKeyDer } from '../x509/cert.ts';
import { auditAll, type AuditEvent } from '../sys/audit.ts';
import { leafProfile } from '../sign/profile.ts';
import { transaction } from '../sign/transaction.ts';

/**
 * What a group's checks and replies read, read once per group rather than once per request (the
 * database grows with every certificate; 30 requests each parsing it were most of a group's time).
 * Valid only inside one lock hold, before its signing run changes the database.
 */
export class GroupReads {
  private rowsRead?: Promise<Array<{ dir: string; row: DbEntry }>>;
  private readonly keys = new Map<string, Promise<Buffer | undefined>>();
  private readonly files = new Map<string, Promise<string>>();

  constructor(readonly ca: Ca) {}

  /** Every row of every intermediate's database (current and previous), with its directory. */
  rows(): Promise<Array<{ dir: string; row: DbEntry }>> {
    this.rowsRead ??= (async () => {
      const out: Array<{ dir: string; row: DbEntry }> = [];
      for (const issuer of await this.ca.store.intermediates()) for (const row of await readDb(issuer.dir)) out.push({ dir: issuer.dir, row });
      return out;
    })();
    return this.rowsRead;
  }

  /** The public key (SPKI DER) of the certificate openssl kept in newcerts/; undefined if unreadable. */
  certKey(dir: string, serial: string): Promise<Buffer | undefined> {
    const file = path.join(dir, 'newcerts', `${serial}.pem`);
    let key = this.keys.get(file);
    if (!key) {
      key = fsp.readFile(file, 'utf8').then((pem) => publicKeyDer(parseCertPem(pem).x509), () => undefined);
      this.keys.set(file, key);
    }
    return key;
  }

  text(file: string): Promise<string> {
    let text = this.files.get(file);
    if (!text) { text = fsp.readFile(file, 'utf8'); this.files.set(file, text); }
    return text;
  }
}

export type SigningJob<R> = LeafRequest & {
  /** Names this job claims (`cn:…`, `dns:…`, `token:…`): no two jobs of a group share one. */
  claims: readonly string[];
  /** Re-checks under the lock; throws (a RivetError) to refuse before anything is signed. */
  checkLocked: (reads: GroupReads) => Promise<void>;
  /** After signing, still under the lock: spend the token, build the reply and the audit line. */
  finishLocked: (issued: Issued, reads: GroupReads) => Promise<{ reply: R; audit: AuditEvent }>;
};

const LATER = Symbol('in the next group');

/** A group waits while requests keep arriving 4 ms apart, for at most 20 ms. */
const GATHER = { quietMs: 4, maxMs: 20 };
type Outcome = { value: unknown } | { error: unknown } | typeof LATER;

export class SigningQueue {
  private readonly groups: GroupCommit<SigningJob<unknown>, Outcome>;

  constructor(private readonly ca: Ca, maxGroup = 64) {
    this.groups = new GroupCommit((jobs) => transaction(ca, `sign ${jobs.length} certificate${jobs.length === 1 ? '' : 's'}`, () => this.signGroupLocked(jobs)), { maxGroup, gather: GATHER });
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
    const live = await liveRowsByCn(this.ca);
    const accepted: number[] = [];
    for (const [i, job] of jobs.entries()) {
      if (job.claims.some((c) => claimed.has(c))) { outcomes[i] = LATER; continue; }
      try {
        await job.checkLocked(reads);
        if (job.id.kind === 'node') await checkNodeNamesLocked(this.ca, job.id.nodeId, leafProfile(job.id, this.ca.domain, job.sans).dns, live);
        for (const c of job.claims) claimed.add(c);
        accepted.push(i);
      } catch (error) { outcomes[i] = { error }; }
    }
    const issued = accepted.length ? await signLeaves(this.ca, await this.ca.store.current(), accepted.map((i) => jobs[i]!), leafValidity()) : [];
    const events: AuditEvent[] = [];
    for (const [k, i] of accepted.entries()) {
      const result = issued[k]!;
      if (result instanceof Error) { outcomes[i] = { error: result }; continue; }
      try {
        const done = await jobs[i]!.finishLocked(result, reads);
        outcomes[i] = { value: done.reply };
        events.push(done.audit);
      } catch (error) { outcomes[i] = { error }; }
    }
    // One append and one datasync for the group; a reply leaves only once its line is on disk.
    await auditAll(this.ca.store.auditLog, events);
    return outcomes;
  }
}
