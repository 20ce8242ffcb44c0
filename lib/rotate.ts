// Intermediate rotation (DESIGN §4.1, the seed's "rotated mid-life"): generation n+1 issues from
// now on; generation n moves to intermediate/previous/<n>/ and keeps signing its CRL, so its
// leaves verify (and can be revoked) until they expire. Once none is left unexpired, `tidy`
// retires it to intermediate/retired/<n>/: out of chain.pem and crl.pem, its key deleted.
//
// Crash safety. The current intermediate lives at fixed paths (intermediate/int.crt, …), so the
// switch cannot be one rename. Instead:
//   build   the new intermediate in a temp dir           (killed: recovery deletes it; old stays)
//   commit  rename it to intermediate.next/              (from here on recovery rolls forward, and
//                                                          store.current() answers with it)
//   then    hard-link old → previous/<n> (temp + rename), clear old from intermediate/, link new
//           into intermediate/ (`generation` first), rewrite chain.pem and crl.pem, and finally
//           rename intermediate.next away — after which intermediate/ is the current one.
// Every step is idempotent and each leaves a complete current intermediate in view (the new one
// in intermediate.next/ until the last rename, intermediate/ after it); store.change() finishes a
// half-done rotation before anything else runs.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { X509Certificate } from 'node:crypto';
import type { Ca } from './ca.ts';
import type { CaStore, Issuer } from './store.ts';
import { buildIntermediate } from './authority.ts';
import { requireRootSigner } from './ceremony.ts';
import { writeBundleLocked, writeChainLocked, refreshCrlsLocked } from './publish.ts';
import { readDb } from './db.ts';
import { ensureDir, exists, syncDir, tempPathFor, TEMP_MARK } from './files.ts';
import { audit } from './audit.ts';
import type { KeyType } from './keys.ts';
import { RivetError } from './errors.ts';

/**
 * Fault injection for the crash tests (test/rotate-crash.test.ts): SIGKILLs this process at a
 * named step when RIVET_CRASH_AT names it. Unset in production.
 */
export function crashPoint(step: string): void {
  if (process.env.RIVET_CRASH_AT === step) process.kill(process.pid, 'SIGKILL');
}

/** What belongs to one issuer in its directory (not the chain, other generations or temp files). */
async function issuerEntries(dir: string): Promise<string[]> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => !['previous', 'retired', 'chain.pem'].includes(n) && !n.startsWith(TEMP_MARK));
}

async function readGeneration(dir: string): Promise<number | undefined> {
  const n = Number((await fsp.readFile(path.join(dir, 'generation'), 'utf8').catch(() => '')).trim());
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** fsync every file and directory under `dir` (openssl does not fsync what it writes). */
async function syncTree(dir: string): Promise<void> {
  for (const ent of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) await syncTree(p);
    else if (ent.isFile()) { const fh = await fsp.open(p, 'r'); try { await fh.sync(); } finally { await fh.close(); } }
  }
  await syncDir(dir);
}

/** Hard-links a file, or a directory tree file by file (same filesystem: no bytes copied). */
async function linkTree(from: string, to: string): Promise<void> {
  const st = await fsp.lstat(from);
  if (!st.isDirectory()) { await fsp.link(from, to); return; }
  await fsp.mkdir(to, { mode: st.mode & 0o777 });
  for (const name of await fsp.readdir(from)) await linkTree(path.join(from, name), path.join(to, name));
}

/** Links one entry into `dir` atomically: a directory is built under a temp name, then renamed. */
async function installEntry(from: string, dir: string, name: string): Promise<void> {
  const target = path.join(dir, name);
  if ((await fsp.lstat(from)).isDirectory()) {
    const tmp = tempPathFor(target);
    await linkTree(from, tmp);
    await syncTree(tmp);
    await fsp.rename(tmp, target);
  } else {
    await fsp.link(from, target);
  }
}

/** Finishes a committed rotation; a no-op when none is pending. The caller holds the CA lock. */
export async function resumeRotation(store: CaStore): Promise<void> {
  const next = await store.pendingRotation();
  if (!next) return;
  const cur = store.intermediateDir;
  const oldGen = next.generation - 1;
  const prev = path.join(store.previousDir, String(oldGen));
  // 1. The old intermediate, complete, at previous/<n>.
  if (!(await exists(prev))) {
    if ((await readGeneration(cur)) !== oldGen || !(await exists(path.join(cur, 'int.crt')))) {
      throw new RivetError(`rotation to intermediate ${next.generation} cannot find intermediate ${oldGen} in ${cur} or ${prev} — restore it from a backup`, 'rotation');
    }
    await ensureDir(store.previousDir);
    const tmp = tempPathFor(prev);
    await fsp.mkdir(tmp, { mode: 0o700 });
    for (const name of await issuerEntries(cur)) await linkTree(path.join(cur, name), path.join(tmp, name));
    await syncTree(tmp);
    crashPoint('rotate-linked-old');
    await fsp.rename(tmp, prev);
    await syncDir(store.previousDir);
    crashPoint('rotate-moved-old');
  }
  // 2. Clear intermediate/ — unless step 3 already began (it links `generation` first).
  if ((await readGeneration(cur)) !== next.generation) {
    for (const name of await issuerEntries(cur)) {
      await fsp.rm(path.join(cur, name), { recursive: true, force: true });
      crashPoint('rotate-clearing');
    }
    await syncDir(cur);
  }
  // 3. The new intermediate into intermediate/, skipping what a killed run already linked.
  const names = (await issuerEntries(next.dir)).sort((a, b) => Number(b === 'generation') - Number(a === 'generation'));
  for (const name of names) {
    if (await exists(path.join(cur, name))) continue;
    await installEntry(path.join(next.dir, name), cur, name);
    crashPoint('rotate-installing');
  }
  await syncDir(cur);
  // 4. chain.pem and crl.pem carry both generations (read while intermediate.next is current).
  await writeChainLocked({ store });
  await writeBundleLocked({ store });
  crashPoint('rotate-published');
  // 5. One rename hands "current" from intermediate.next/ to intermediate/.
  const done = tempPathFor(next.dir);
  await fsp.rename(next.dir, done);
  await syncDir(store.dir);
  crashPoint('rotate-switched');
  await fsp.rm(done, { recursive: true, force: true });
}

export type RotateResult = { generation: number; previous: number; cert: X509Certificate; serial: string };

export async function rotateIntermediate(ca: Ca, opts: { keyType?: KeyType } = {}): Promise<RotateResult> {
  const { store } = ca;
  await store.current(); // says how to make the first one when there is none
  await requireRootSigner(ca, 'rotate-intermediate');
  return store.change('rotate-intermediate', async () => {
    const old = await store.current();
    const generation = old.generation + 1;
    for (const taken of [path.join(store.previousDir, String(old.generation)), path.join(store.retiredDir, String(old.generation))]) {
      if (await exists(taken)) throw new RivetError(`${taken} already exists — intermediate ${old.generation} cannot be rotated out twice; move it aside, then retry`, 'rotation');
    }
    const built = await buildIntermediate(ca, generation, opts.keyType);
    await syncTree(built.stage);
    crashPoint('rotate-built');
    await fsp.rename(built.stage, store.nextDir); // the commit point
    await syncDir(store.dir);
    crashPoint('rotate-committed');
    await resumeRotation(store);
    await refreshCrlsLocked(ca); // the root CRL too, if due, while the root is at hand
    await audit(store.auditLog, { event: 'rotate-intermediate', result: 'ok', cn: `Rivet Intermediate CA ${generation}`, serial: built.serial, detail: `previous ${old.generation}` });
    return { generation, previous: old.generation, cert: built.cert, serial: built.serial };
  });
}

/**
 * Retires every previous intermediate with no unexpired leaf left (revoked ones included, so a
 * revocation stays published until the certificate expires). Caller holds the CA lock.
 */
export async function retireDrainedLocked(ca: Pick<Ca, 'store'>, now = new Date()): Promise<number[]> {
  const { store } = ca;
  const retired: number[] = [];
  const older = (await store.intermediates()).slice(1).filter((i: Issuer) => path.dirname(i.dir) === store.previousDir);
  for (const issuer of older) {
    const unexpired = (await readDb(issuer.dir)).filter((e) => e.notAfter.getTime() > now.getTime());
    if (unexpired.length) continue;
    const to = path.join(store.retiredDir, String(issuer.generation));
    if (await exists(to)) throw new RivetError(`${to} already exists — move it aside, then rerun tidy`, 'rotation');
    await ensureDir(store.retiredDir);
    await fsp.rename(issuer.dir, to);
    await syncDir(store.previousDir);
    await syncDir(store.retiredDir);
    // Nothing it could still sign is wanted: no leaves, and it is leaving every chain.
    await fsp.rm(path.join(to, 'int.key'), { force: true });
    retired.push(issuer.generation);
  }
  if (retired.length) {
    await writeChainLocked(ca);
    await writeBundleLocked(ca);
  }
  return retired;
}
