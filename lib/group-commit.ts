// Group commit: callers submit finished work one by one; whatever arrives while a commit is
// running goes into the next one together. The cost of a commit (the CA lock, fsyncs, the
// index.txt rewrite) is then paid once per group instead of once per certificate.
type Waiter<T, R> = { item: T; resolve: (r: R) => void; reject: (e: unknown) => void };

export class GroupCommit<T, R> {
  private pending: Waiter<T, R>[] = [];
  private running: Promise<void> | undefined;

  /**
   * `commit` gets a group and returns one result per item, in order. `gather`: before a commit,
   * keep waiting `quietMs` while items are still arriving, up to `maxMs` (requests of a burst
   * reach the queue a few ms apart; waiting for them costs a lone request one quiet period).
   */
  constructor(private readonly commit: (group: T[]) => Promise<R[]>, private readonly maxGroup = 256, private readonly gather?: { quietMs: number; maxMs: number }) {}

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.running ??= this.loop();
    });
  }

  /** Resolves once everything submitted so far is committed (or failed). */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  private async loop(): Promise<void> {
    // Let the submitters of this tick join the first group.
    await new Promise<void>((r) => setImmediate(r));
    while (this.pending.length) {
      if (this.gather) await this.gathered(this.gather);
      const group = this.pending.splice(0, this.maxGroup);
      try {
        const results = await this.commit(group.map((w) => w.item));
        group.forEach((w, i) => w.resolve(results[i]!));
      } catch (err) {
        for (const w of group) w.reject(err);
      }
    }
    this.running = undefined;
  }

  private async gathered({ quietMs, maxMs }: { quietMs: number; maxMs: number }): Promise<void> {
    const until = Date.now() + maxMs;
    for (let seen = -1; this.pending.length !== seen && this.pending.length < this.maxGroup && Date.now() < until;) {
      seen = this.pending.length;
      await new Promise<void>((r) => setTimeout(r, quietMs));
    }
  }
}
