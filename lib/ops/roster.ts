// `issue --roster FILE` (DESIGN §4.2): many identities in one run. The whole file is validated
// first (a bad line changes nothing); then lib/ops/batch-issue.ts makes and signs keys in parallel outside the
// lock, checks each like any other issuance, and group-commits them to the database.
import type { Ca } from '../ca/handle.ts';
import { parseIdentity, fileStem, type Identity } from '../core/identity.ts';
import { parseSan, type San } from '../core/san.ts';
import { leafProfile } from '../sign/profile.ts';
import type { OperatorResult } from './operator-issue.ts';
import { leafValidity, type Validity } from '../sign/validity.ts';
import { issueBatch } from './batch-issue.ts';
import { UsageError } from '../core/errors.ts';
import { isHostLocal, NameIndex } from '../policy/name-ownership.ts';
import { nameIndexLocked } from '../policy/live-names.ts';

export type RosterEntry = { id: Identity; sans: San[]; line: number };

/** One identity per line, optional `DNS:`/`IP:` SANs after it; `#` starts a comment. */
export function parseRoster(text: string, ca: Ca, opts: { allowSharedName?: boolean } = {}): RosterEntry[] {
  const entries: RosterEntry[] = [];
  const seen = new Map<string, number>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    try {
      const [name, ...rest] = line.split(/[ \t]+/);
      const id = parseIdentity(name!, ca.domain);
      const sans = rest.map(parseSan);
      leafProfile(id, ca.domain, sans);
      const stem = fileStem(id);
      if (seen.has(stem)) throw new UsageError(`${stem} is already on line ${seen.get(stem)}`);
      seen.set(stem, i + 1);
      entries.push({ id, sans, line: i + 1 });
    } catch (err) {
      throw new UsageError(`roster line ${i + 1}: ${(err as Error).message}`);
    }
  });
  if (entries.length === 0)
    throw new UsageError('roster has no identities — one per line, e.g. `ct111 DNS:ct111.lan` or `opus@ct111`');
  checkNoSharedNames(entries, ca, opts.allowSharedName === true);
  return entries;
}

/**
 * Two nodes of one roster may not share a name, by the same rules as against live certificates
 * (lib/policy/name-ownership.ts; the database is checked at commit). `allowShared` lets them.
 */
function checkNoSharedNames(entries: readonly RosterEntry[], ca: Ca, allowShared: boolean): void {
  const owner = new Map<string, RosterEntry>();
  const index = new NameIndex(ca.domain);
  for (const e of entries) {
    if (e.id.kind !== 'node' || allowShared) continue;
    const p = leafProfile(e.id, ca.domain, e.sans);
    for (const name of [...p.dns, ...p.ips]) {
      const first = owner.get(name);
      if (first && !isHostLocal(name))
        throw new UsageError(
          `roster lines ${first.line} and ${e.line}: both nodes would carry ${p.ips.includes(name) ? 'IP address' : 'DNS name'} ${name} — a name belongs to one node`,
          'name_taken',
        );
      owner.set(name, e);
    }
    const c = index.conflict(e.id.nodeId, p.dns, p.ips);
    if (c)
      throw new UsageError(
        `roster ${c.serial} and line ${e.line}: nodes ${c.holder} and ${e.id.nodeId} would both claim DNS name ${c.name} — a name belongs to one node`,
        'name_taken',
      );
    index.add(e.id.nodeId, `line ${e.line}`, p.dns, p.ips);
  }
}

export type RosterOutcome = { entry: RosterEntry; result?: OperatorResult; error?: string };

export async function issueRoster(
  ca: Ca,
  entries: readonly RosterEntry[],
  opts: {
    ifMissing?: boolean;
    force?: boolean;
    allowSharedName?: boolean;
    validity?: Validity;
    concurrency?: number;
    onProgress?: (done: number, total: number, o: RosterOutcome) => void;
  } = {},
): Promise<RosterOutcome[]> {
  if (!opts.allowSharedName) await checkAgainstLive(ca, entries);
  let done = 0;
  const results = await issueBatch(
    ca,
    entries.map((e) => ({ id: e.id, sans: e.sans })),
    {
      validity: opts.validity ?? leafValidity(),
      ifMissing: opts.ifMissing,
      force: opts.force,
      allowSharedName: opts.allowSharedName,
      concurrency: opts.concurrency,
      event: 'issue-roster',
      onOutcome: (i, r) => opts.onProgress?.(++done, entries.length, outcome(entries[i]!, r)),
    },
  );
  return results.map((r, i) => outcome(entries[i]!, r));
}

/**
 * A roster naming a name a live node holds is refused before anything is made (exit 2), like a
 * bad line. Read without the lock: the commit re-checks each certificate under it.
 */
async function checkAgainstLive(ca: Ca, entries: readonly RosterEntry[]): Promise<void> {
  const index = await nameIndexLocked(ca);
  for (const e of entries) {
    if (e.id.kind !== 'node') continue;
    const p = leafProfile(e.id, ca.domain, e.sans);
    const c = index.conflict(e.id.nodeId, p.dns, p.ips);
    if (c) throw new UsageError(`roster line ${e.line}: ${c.message} (or --allow-shared-name)`, 'name_taken');
  }
}

function outcome(entry: RosterEntry, r: OperatorResult | Error): RosterOutcome {
  return r instanceof Error ? { entry, error: r.message } : { entry, result: r };
}
