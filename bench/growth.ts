// Section 6: issuance latency as history accumulates. History is synthesized, not issued: N rows
// of certificates that expired over the past two years are appended to the intermediate's
// index.txt (no newcerts copies), then `tidy` archives them as it would after years of real
// issuance. Latency is one issuance through the library (the CLI's code path without the
// process start), median of several, the sizes taking turns. One extra row shows 100,000 entries
// without tidy.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SNAP, fresh, log, median } from './common.ts';

export type GrowthPoint = { history: number; tidied: boolean; ms: number; tidyMs?: number };

function pastRow(i: number, now: number): string {
  const d = new Date(now - (1 + (i % 700)) * 86_400_000).toISOString();
  const t = `${d.slice(2, 4)}${d.slice(5, 7)}${d.slice(8, 10)}${d.slice(11, 13)}${d.slice(14, 16)}${d.slice(17, 19)}Z`;
  return `V\t${t}\t\t${randomBytes(16).toString('hex').toUpperCase()}\tunknown\t/CN=h${i}@ct9\n`;
}

export async function growth(work: string, sizes: number[], samples: number): Promise<GrowthPoint[]> {
  const lib = (f: string) => import(path.join(SNAP, 'lib', f));
  const [
    { openCa },
    { meshDomain },
    { initRoot, issueIntermediate },
    { issueWithNewKey },
    { tidy },
    { parseIdentity },
  ] = await Promise.all(
    ['ca/handle.ts', 'core/identity.ts', 'ops/hierarchy.ts', 'ops/issue.ts', 'ops/tidy.ts', 'core/identity.ts'].map(
      lib,
    ),
  );
  const cases = [...sizes.map((n) => ({ n, tidy: true })), { n: Math.max(...sizes), tidy: false }];
  const built = [];
  for (const c of cases) {
    const dir = path.join(fresh(path.join(work, 'growth', `${c.n}-${c.tidy ? 'tidy' : 'raw'}`)), 'ca');
    const ca = openCa(dir, meshDomain('mesh'));
    await initRoot(ca);
    await issueIntermediate(ca);
    const now = Date.now();
    const rows: string[] = [];
    for (let i = 0; i < c.n; i++) rows.push(pastRow(i, now));
    fs.appendFileSync(path.join(dir, 'intermediate', 'index.txt'), rows.join(''));
    let tidyMs: number | undefined;
    if (c.tidy) {
      const t = performance.now();
      await tidy(ca);
      tidyMs = performance.now() - t;
    }
    await issueWithNewKey(ca, parseIdentity('warm@ct9', ca.domain)); // first run pays module and cache warm-up
    built.push({ ...c, ca, tidyMs, ms: [] as number[] });
  }
  // Interleaved, one issuance per CA in turn, so load from other processes hits every size alike.
  for (let i = 0; i < samples; i++) {
    for (const b of built) {
      const t = performance.now();
      await issueWithNewKey(b.ca, parseIdentity(`g${i}@ct9`, b.ca.domain));
      b.ms.push(performance.now() - t);
    }
  }
  const points: GrowthPoint[] = built.map((b) => ({
    history: b.n,
    tidied: b.tidy,
    ms: median(b.ms),
    tidyMs: b.tidyMs,
  }));
  for (const p of points)
    log(`growth: ${p.history} entries${p.tidied ? ' after tidy' : ', no tidy'}: ${p.ms.toFixed(1)} ms/issuance`);
  return points;
}
