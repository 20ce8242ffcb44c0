// Rate limits on the authenticated issuing routes (/renew, /agents; DESIGN §4.3): per identity
// and per source address, counted on arrival (before any await, so a burst cannot slip past
// while earlier requests are still being answered); a refused request counts against neither.
// Sliding window of request times per key.
import net from 'node:net';

export type RateLimit = { max: number; windowMs: number };

/**
 * Which budget a client draws on (this limiter, serve's failure limiter and its per-source
 * connection cap): `203.0.113.7`, or `2001:db8:1:2::/64` for any address in that /64. One IPv6
 * host is routinely given a whole /64 (RFC 6177 assigns end sites /48 to /64; SLAAC and privacy
 * addresses pick any of its 2^64 interface ids), so keying by the full address would hand one
 * attacker 2^64 budgets. A dual-stack listener sees IPv4 clients as IPv4-mapped IPv6
 * (::ffff:a.b.c.d): those count as the IPv4 address they are.
 */
export function sourceKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const bare = address.split('%')[0]!; // a zone id names an interface, not a different host
  if (net.isIPv4(bare)) return bare;
  if (!net.isIPv6(bare)) return bare;
  const g = ipv6Groups(bare);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return [g[6]! >> 8, g[6]! & 0xff, g[7]! >> 8, g[7]! & 0xff].join('.');
  }
  return `${g
    .slice(0, 4)
    .map((x) => x.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of an address net.isIPv6 accepted (`::` expanded, a dotted tail folded). */
function ipv6Groups(text: string): number[] {
  let t = text;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(t);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    t = `${t.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = t.split('::');
  const front = head ? head.split(':') : [];
  const back = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : Array<string>(8 - front.length - back.length).fill('0');
  return [...front, ...zeros, ...back].map((x) => parseInt(x, 16));
}

export class RequestLimiter {
  private readonly hits = new Map<string, number[]>();
  constructor(
    private readonly limit: RateLimit,
    private readonly maxKeys = 10_000,
  ) {}

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
