// `issue --roster FILE` (DESIGN §4.2): many identities in one run. The whole file is validated
// first (a bad line changes nothing); keys are then made in parallel and signed one by one under
// the lock, each checked like any other issuance.
import os from 'node:os';
import type { Ca } from './ca.ts';
import { parseIdentity, fileStem, type Identity } from './identity.ts';
import { parseSan, type San } from './san.ts';
import { leafProfile } from './profile.ts';
import { issueWithNewKey, type OperatorResult, type Validity } from './issue.ts';
import { UsageError } from './errors.ts';

export type RosterEntry = { id: Identity; sans: San[]; line: number };

/** One identity per line, optional `DNS:`/`IP:` SANs after it; `#` starts a comment. */
export function parseRoster(text: string, ca: Ca): RosterEntry[] {
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
  if (entries.length === 0) throw new UsageError('roster has no identities — one per line, e.g. `ct111 DNS:ct111.lan` or `opus@ct111`');
  return entries;
}

export type RosterOutcome = { entry: RosterEntry; result?: OperatorResult; error?: string };

export async function issueRoster(ca: Ca, entries: readonly RosterEntry[], opts: { ifMissing?: boolean; force?: boolean; validity?: Validity; concurrency?: number; onProgress?: (done: number, total: number, o: RosterOutcome) => void } = {}): Promise<RosterOutcome[]> {
  const outcomes: RosterOutcome[] = new Array(entries.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < entries.length) {
      const i = next++;
      const entry = entries[i]!;
      let o: RosterOutcome;
      try {
        o = { entry, result: await issueWithNewKey(ca, entry.id, { sans: entry.sans, ifMissing: opts.ifMissing, force: opts.force, validity: opts.validity, event: 'issue-roster' }) };
      } catch (err) {
        o = { entry, error: (err as Error).message };
      }
      outcomes[i] = o;
      opts.onProgress?.(++done, entries.length, o);
    }
  };
  const n = Math.max(1, Math.min(opts.concurrency ?? os.availableParallelism() * 2, entries.length));
  await Promise.all(Array.from({ length: n }, worker));
  return outcomes;
}
