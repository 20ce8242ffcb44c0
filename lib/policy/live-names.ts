// Building the ownership index (name-ownership.ts) from what the CA recorded: every live row of
// every intermediate's database whose CN is a node, with the names of the certificate openssl kept
// in newcerts/. The database is read afresh on every call (the caller holds the CA lock, so it is
// current); only certificate names are cached, by file, since a signed certificate never changes:
// a long-running service parses each node certificate once, not once per request.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Ca } from '../ca/handle.ts';
import { readDb, isLive, type DbEntry } from '../ca/database.ts';
import { identityFromCommonName } from '../core/identity.ts';
import { pemToDer } from '../x509/der.ts';
import { sansOfDer } from '../x509/cert.ts';
import { nodeBaseNames } from '../sign/profile.ts';
import { NameIndex, refuseConflict, type NameConflict } from './name-ownership.ts';

export type DbRow = { dir: string; row: DbEntry };

const namesByFile = new Map<string, { dns: string[]; ips: string[] }>();

/** Every row of every intermediate's database (current and previous), with its directory. */
export async function allRows(ca: Ca): Promise<DbRow[]> {
  const out: DbRow[] = [];
  for (const issuer of await ca.store.intermediates())
    for (const row of await readDb(issuer.dir)) out.push({ dir: issuer.dir, row });
  return out;
}

async function namesOf(file: string): Promise<{ dns: string[]; ips: string[] } | undefined> {
  const hit = namesByFile.get(file);
  if (hit) return hit;
  try {
    const [der] = pemToDer(await fsp.readFile(file, 'utf8'), 'CERTIFICATE');
    if (!der) return undefined;
    const { dns, ips } = sansOfDer(der);
    const names = { dns, ips };
    namesByFile.set(file, names);
    return names;
  } catch {
    return undefined;
  }
}

/** The index of live node names. The caller holds the CA lock; `rows` if it has read them already. */
export async function nameIndexLocked(ca: Ca, rows?: readonly DbRow[]): Promise<NameIndex> {
  const index = new NameIndex(ca.domain);
  const now = new Date();
  const seen = new Set<string>();
  const live = (rows ?? (await allRows(ca))).filter(
    (r) => isLive(r.row, now) && !r.row.cn.includes('@') && r.row.cn.endsWith(`.${ca.domain}`),
  );
  const named = await Promise.all(
    live.map(async ({ dir, row }) => {
      const file = path.join(dir, 'newcerts', `${row.serial}.pem`);
      seen.add(file);
      return { row, names: await namesOf(file) };
    }),
  );
  for (const { row, names } of named) {
    let node: string;
    try {
      const id = identityFromCommonName(row.cn, ca.domain);
      if (id.kind !== 'node') continue;
      node = id.nodeId;
    } catch {
      continue;
    }
    // An unreadable certificate still holds at least the names every node certificate carries.
    index.add(node, row.serial, names?.dns ?? nodeBaseNames(node, ca.domain), names?.ips ?? []);
  }
  if (namesByFile.size > 2 * seen.size + 64)
    for (const file of namesByFile.keys()) if (!seen.has(file)) namesByFile.delete(file);
  return index;
}

export type NameCheck = { index?: NameIndex; allowShared?: boolean };

/**
 * Refuses (UsageError `name_taken`) a node certificate for `node` with these names while another
 * live node holds one of them. With `allowShared` (the operator's --allow-shared-name) the
 * conflicts are returned for the audit line instead. The caller holds the CA lock.
 */
export async function checkNodeNamesLocked(
  ca: Ca,
  node: string,
  names: { dns: readonly string[]; ips: readonly string[] },
  opts: NameCheck = {},
): Promise<NameConflict[]> {
  const index = opts.index ?? (await nameIndexLocked(ca));
  const conflicts = index.conflicts(node, names.dns, names.ips);
  if (!opts.allowShared) refuseConflict(conflicts[0]);
  return conflicts;
}

/** The audit detail of an issuance the operator allowed to share names. */
export function sharedDetail(conflicts: readonly NameConflict[]): string | undefined {
  if (conflicts.length === 0) return undefined;
  return `--allow-shared-name: ${conflicts.map((c) => `${c.name} shared with ${c.holder} (serial ${c.serial})`).join('; ')}`;
}
