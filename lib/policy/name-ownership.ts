// A DNS name belongs to one node at a time (DESIGN §3). Node-ids may contain "-" and a node's
// listener names are <node-id>-<x>.<domain>, so ct1's "ct1-mcp.mesh" is also the main name of a
// node called "ct1-mcp". Without this check, a node holding the bootstrap secret could enroll an
// alias that is another node's name and then serve as that node. First come, first served: a new
// node certificate may not carry a live node's main name, and may not take a main name that a
// live node already carries as an alias.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Ca } from '../ca/handle.ts';
import { readDb, isLive, type DbEntry } from '../ca/database.ts';
import { parseCertPem } from '../x509/cert.ts';
import { UsageError } from '../core/errors.ts';
import type { NodeId } from '../core/identity.ts';

type LiveRow = { row: DbEntry; dir: string };
export type LiveRowsByCn = ReadonlyMap<string, LiveRow[]>;

/** Live rows by CN: read once when several names are checked in one lock hold. */
export async function liveRowsByCn(ca: Ca): Promise<Map<string, LiveRow[]>> {
  const byCn = new Map<string, LiveRow[]>();
  for (const issuer of await ca.store.intermediates()) {
    for (const row of await readDb(issuer.dir)) {
      if (!isLive(row)) continue;
      byCn.set(row.cn, [...(byCn.get(row.cn) ?? []), { row, dir: issuer.dir }]);
    }
  }
  return byCn;
}

/** Throws naming the first name another live node holds. The caller holds the CA lock. */
export async function checkNodeNamesLocked(ca: Ca, node: NodeId, dns: readonly string[], live?: LiveRowsByCn): Promise<void> {
  const suffix = `.${ca.domain}`;
  const own = `${node}${suffix}`;
  const byCn = live ?? await liveRowsByCn(ca);
  for (const name of dns) {
    const label = name.endsWith(suffix) ? name.slice(0, -suffix.length) : '';
    if (!label || label.includes('.') || name === own) continue;
    if (byCn.has(name)) throw new UsageError(`DNS name ${name} is the name of node ${label}, which holds a valid certificate — pick another alias`, 'name_taken');
  }
  // A node whose id is a "-" prefix of ours may carry our names among its listener aliases.
  for (let i = node.indexOf('-'); i > 0; i = node.indexOf('-', i + 1)) {
    const other = `${node.slice(0, i)}${suffix}`;
    for (const { row, dir } of byCn.get(other) ?? []) {
      const pem = await fsp.readFile(path.join(dir, 'newcerts', `${row.serial}.pem`), 'utf8').catch(() => '');
      const taken = pem ? parseCertPem(pem).dns.find((d) => dns.includes(d)) : undefined;
      if (taken) throw new UsageError(`DNS name ${taken} already belongs to node ${other} (serial ${row.serial}) — node-id ${node} would overlap it; pick another node-id or revoke ${other}'s certificate`, 'name_taken');
    }
  }
}
