// The brake on guessing (DESIGN §4.7): failed authentications per source (policy/rate-limit.ts sourceKey: an IPv4
// address or an IPv6 /64) in a sliding window. Past `maxFailures` the source gets 429 until its
// oldest failure ages out; other sources are not affected.
//
// A limit holds only if every attempt is counted before the next one is checked. The server
// decides the secret and certificate cases without I/O and counts them in the same turn; an
// attempt whose verdict needs I/O (a token, read from the token store) is counted as a failure
// while it is pending (`hold`), so a burst of them cannot all pass the check before one lands.

export type RateLimitOptions = { maxFailures: number; windowMs: number; maxSources?: number };

/** How long a source blocked only by its pending attempts is asked to wait. */
const PENDING_RETRY_MS = 1_000;

export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();
  private readonly pending = new Map<string, number>();
  constructor(readonly opts: RateLimitOptions) {}

  private recent(key: string, now: number): number[] {
    const list = (this.failures.get(key) ?? []).filter((t) => now - t < this.opts.windowMs);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }

  /** Milliseconds until the source may try again, or 0 when it is not throttled. */
  blockedFor(key: string, now = Date.now()): number {
    const list = this.recent(key, now);
    if (list.length >= this.opts.maxFailures)
      return this.opts.windowMs - (now - list[list.length - this.opts.maxFailures]!);
    return list.length + (this.pending.get(key) ?? 0) >= this.opts.maxFailures ? PENDING_RETRY_MS : 0;
  }

  /** Counts a failure; true when it is the one that reaches the limit (from now on: 429). */
  fail(key: string, now = Date.now()): boolean {
    const list = this.recent(key, now);
    list.push(now);
    this.failures.set(key, list.slice(-this.opts.maxFailures));
    // A flood of distinct sources must not grow memory without bound: forget the oldest.
    const cap = this.opts.maxSources ?? 10_000;
    if (this.failures.size > cap) this.failures.delete(this.failures.keys().next().value!);
    return list.length === this.opts.maxFailures;
  }

  /** Counts an attempt as failed until the returned release is called (once its verdict is in). */
  hold(key: string): () => void {
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.pending.get(key) ?? 1) - 1;
      if (n > 0) this.pending.set(key, n);
      else this.pending.delete(key);
    };
  }

  sweep(now = Date.now()): void {
    for (const key of [...this.failures.keys()]) this.recent(key, now);
  }
}
