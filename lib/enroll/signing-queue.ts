// Group commit for the enrollment service. Each request does its own checks before the lock, then
// joins the queue; whatever queued while the previous group held the lock is signed in the next
// one: one lock hold, one database read per request, one `openssl ca` run for all the requests
// whose CSRs carry their profile (lib/issue.ts signLeavesLocked). Under load that turns one
// process start and one lock handoff per request into one per group.
//
// Inside a group each request first re-checks, under the lock, what may have changed (its token,
// its certificate's status, revoked keys). Two requests that touch the same identity, token or DNS
// name never share a group: the later one waits for the next, so it sees the first one's result
// exactly as if the two had come one after the other.
import type { Ca } from '../ca.ts';
import { GroupCommit } from '../group-commit.ts';
import { leafValidity, signLeavesLocked, type Issued, type LeafRequest } from '../issue.ts';

export type SigningJob<R> = LeafRequest & {
  /** Names this job claims (`cn:…`, `dns:…`, `token:…`): no two jobs of a group share one. */
  claims: readonly string[];
  /** Re-checks under the lock; throws (an HttpError) to refuse before anything is signed. */
  checkLocked: () => Promise<void>;
  /** After signing, still under the lock: spend the token, write the audit line, build the reply. */
  finishLocked: (issued: Issued) => Promise<R>;
};

const LATER = Symbol('in the next group');
type Outcome = { value: unknown } | { error: unknown } | typeof LATER;

export class SigningQueue {
  private readonly groups: GroupCommit<SigningJob<unknown>, Outcome>;

  constructor(private readonly ca: Ca, maxGroup = 64) {
    this.groups = new GroupCommit((jobs) => ca.store.change(`sign ${jobs.length} certificate${jobs.length === 1 ? '' : 's'}`, () => this.signGroupLocked(jobs)), maxGroup);
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
    const accepted: number[] = [];
    for (const [i, job] of jobs.entries()) {
      if (job.claims.some((c) => claimed.has(c))) { outcomes[i] = LATER; continue; }
      try {
        await job.checkLocked();
        for (const c of job.claims) claimed.add(c);
        accepted.push(i);
      } catch (error) { outcomes[i] = { error }; }
    }
    const issued = await signLeavesLocked(this.ca, accepted.map((i) => jobs[i]!), leafValidity());
    for (const [k, i] of accepted.entries()) {
      const result = issued[k]!;
      if (result instanceof Error) { outcomes[i] = { error: result }; continue; }
      try { outcomes[i] = { value: await jobs[i]!.finishLocked(result) }; } catch (error) { outcomes[i] = { error }; }
    }
    return outcomes;
  }
}
