// Rate limits on the authenticated issuing routes (/renew, /agents; DESIGN §4.3): per identity
// and per source address, counted on arrival (before any await, so a burst cannot slip past
// while earlier requests are still being answered); a refused request counts against neither.
// Sliding window of request times per key.
import net from 'node:net';

export type RateLimit = { max: number; windowMs: number };

/** IPv6 addresses are keyed by their /64: one host usually holds a whole /64. */
export function sourceKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (net.isIPv6(address)) {
    const full = new URL(`http://[${address}]/`).hostname.slice(1, -1);
    const groups = expand(full);
    return `${groups.slice(0, 4).join(':')}::/64`;
  }
  return address;
}

function expand(v6: string): string[] {
  const [head, tail] = v6.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  return [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
}

export class RequestLimiter {
  private readonly hits = new Map<string, number[]>();
  constructor(private readonly limit: RateLimit, private readonly maxKeys = 10_000) {}

  /** Milliseconds until `key` may make another request (0: now), without counting one. */
  wait(key: string, now = Date.now()): number {
    const list = (this.hits.get(key) ?? []).filter((t) => now - t < this.limit.windowMs);
    return list.length >= this.limit.max ? this.limit.windowMs - (now - list[0]!) : 0;
  }

  /** Counts a request for `key`. */
  record(key: string, now = Date.now()): void {
    const list = (this.hits.get(key) ?? []).filter((t) => now - t < this.limit.windowMs);
    list.push(now);
    this.hits.delete(key); // re-inserted last: the map's first key is the least recently used
    this.hits.set(key, list);
    if (this.hits.size > this.maxKeys) this.hits.delete(this.hits.keys().next().value!);
  }

  sweep(now = Date.now()): void {
    for (const [key, list] of this.hits) if (list.every((t) => now - t >= this.limit.windowMs)) this.hits.delete(key);
  }
}
