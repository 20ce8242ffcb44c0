// Group commit: callers submit finished work one by one; whatever arrives while a commit is
// running goes into the next one together. The cost of a commit (the CA lock, fsyncs, the
// index.txt rewrite) is then paid once per group instead of once per certificate.
type Waiter<T, R> = { item: T; resolve: (r: R) => void; reject: (e: unknown) => void };

export type GroupOptions = {
  /** Most items in one group. */
  maxGroup?: number;
  /**
   * Before a group starts, keep waiting `quietMs` while items are still arriving, up to `maxMs`
   * (requests of a burst reach the queue a few ms apart; waiting costs a lone request `quietMs`).
   */
  gather?: { quietMs: number; maxMs: number };
  /** Groups in flight at once (default 1); `commit` serialises whatever must be serial. */
  parallel?: number;
};

export class GroupCommit<T, R> {
  private pending: Waiter<T, R>[] = [];
  private inFlight = 0;
  private forming = false;
  private idle: Array<() => void> = [];
  private readonly maxGroup: number;
  private readonly parallel: number;

  /** `commit` gets a group and returns one result per item, in order. */
  constructor(
    private readonly commit: (group: T[]) => Promise<R[]>,
    private readonly opts: GroupOptions = {},
  ) {
    this.maxGroup = opts.maxGroup ?? 256;
    this.parallel = opts.parallel ?? 1;
  }

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.next();
    });
  }

  /** Resolves once everything submitted so far is committed (or failed). */
  async drain(): Promise<void> {
    while (this.pending.length || this.inFlight || this.forming) await new Promise<void>((r) => this.idle.push(r));
  }

  /** Starts forming the next group if one may start. One group forms at a time. */
  private next(): void {
    if (this.forming || this.inFlight >= this.parallel || this.pending.length === 0) {
      if (!this.forming && this.inFlight === 0 && this.pending.length === 0)
        for (const wake of this.idle.splice(0)) wake();
      return;
    }
    this.forming = true;
    void this.run();
  }

  private async run(): Promise<void> {
    // Let the submitters of this tick join the group.
    await new Promise<void>((r) => setImmediate(r));
    if (this.opts.gather) await this.gathered(this.opts.gather);
    const group = this.pending.splice(0, this.maxGroup);
    this.forming = false;
    this.inFlight++;
    this.next(); // the next group may form while this one commits
    try {
      const results = await this.commit(group.map((w) => w.item));
      group.forEach((w, i) => w.resolve(results[i]!));
    } catch (err) {
      for (const w of group) w.reject(err);
    } finally {
      this.inFlight--;
      this.next();
    }
  }

  private async gathered({ quietMs, maxMs }: { quietMs: number; maxMs: number }): Promise<void> {
    const until = Date.now() + maxMs;
    for (let seen = -1; this.pending.length !== seen && this.pending.length < this.maxGroup && Date.now() < until;) {
      seen = this.pending.length;
      await new Promise<void>((r) => setTimeout(r, quietMs));
    }
  }
}
