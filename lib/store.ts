// Where CA state lives (DESIGN §2) and the one lock around changing it. Every state change goes
// through `CaStore.change()`: lock, repair what a crashed run left, then the change itself.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { withLock } from './lock.ts';
import { ensureDir, exists, removeStaleTemps } from './files.ts';
import { RivetError } from './errors.ts';

/** One CA that signs with `openssl ca`: the root, or an intermediate generation. */
export type Issuer = {
  kind: 'root' | 'intermediate';
  dir: string;
  cert: string;
  key: string;
  crl: string;
  generation: number; // 0 for the root
};

export class CaStore {
  readonly dir: string;
  constructor(dir: string) { this.dir = path.resolve(dir); }

  get rootDir() { return path.join(this.dir, 'root'); }
  get intermediateDir() { return path.join(this.dir, 'intermediate'); }
  get previousDir() { return path.join(this.intermediateDir, 'previous'); }
  /** Intermediates whose leaves have all expired: out of chain.pem and crl.pem, key removed. */
  get retiredDir() { return path.join(this.intermediateDir, 'retired'); }
  /** A rotation's new intermediate between its commit and its installation (lib/rotate.ts). */
  get nextDir() { return path.join(this.dir, 'intermediate.next'); }
  get issuedDir() { return path.join(this.dir, 'issued'); }
  get chainFile() { return path.join(this.intermediateDir, 'chain.pem'); }
  get crlBundle() { return path.join(this.dir, 'crl.pem'); }
  get auditLog() { return path.join(this.dir, 'audit.log'); }
  get lockFile() { return path.join(this.dir, '.lock'); }
  get generationFile() { return path.join(this.intermediateDir, 'generation'); }
  /** Exists while a database change that the CRLs must reflect (revoke, tidy) is in flight. */
  get crlPendingFile() { return path.join(this.dir, '.crl-pending'); }

  /** Re-signs CRLs after a crash left crlPendingFile behind (set by openCa; see publish.ts). */
  repairCrls?: () => Promise<void>;

  issued(stem: string, ext: 'crt' | 'key' | 'p12'): string { return path.join(this.issuedDir, `${stem}.${ext}`); }

  root(): Issuer {
    const d = this.rootDir;
    return { kind: 'root', dir: d, cert: path.join(d, 'ca.crt'), key: path.join(d, 'ca.key'), crl: path.join(d, 'crl.pem'), generation: 0 };
  }

  intermediateAt(dir: string, generation: number): Issuer {
    return { kind: 'intermediate', dir, cert: path.join(dir, 'int.crt'), key: path.join(dir, 'int.key'), crl: path.join(dir, 'crl.pem'), generation };
  }

  async hasRoot(): Promise<boolean> { return exists(this.root().cert); }

  /** The intermediate that issues from now on; throws with the fix when there is none. */
  async current(): Promise<Issuer> {
    const pending = await this.pendingRotation();
    if (pending) return pending;
    const gen = Number((await fsp.readFile(this.generationFile, 'utf8').catch(() => '')).trim());
    const issuer = this.intermediateAt(this.intermediateDir, Number.isInteger(gen) && gen > 0 ? gen : 1);
    if (!(await exists(issuer.cert))) {
      throw new RivetError(await this.hasRoot()
        ? `no intermediate in ${this.dir} — run \`rivet-ca issue-intermediate\` first`
        : `no CA in ${this.dir} — run \`rivet-ca init\` then \`rivet-ca issue-intermediate\` (or set RIVET_CA_DIR)`, 'no_ca');
    }
    return issuer;
  }

  /** Every intermediate whose leaves may still be valid: the current one first, then older ones. */
  async intermediates(): Promise<Issuer[]> {
    const current = await this.current();
    let names: string[] = [];
    try { names = await fsp.readdir(this.previousDir); } catch { /* none retired yet */ }
    const older = names.filter((n) => /^\d+$/.test(n)).map(Number).sort((a, b) => b - a)
      .map((g) => this.intermediateAt(path.join(this.previousDir, String(g)), g));
    // Mid-rotation, before the old one reached previous/, it is still complete in intermediate/.
    if (current.dir === this.nextDir && !older.some((i) => i.generation === current.generation - 1)) {
      older.unshift(this.intermediateAt(this.intermediateDir, current.generation - 1));
    }
    return [current, ...older];
  }

  /**
   * A rotation that was committed (its new intermediate renamed to intermediate.next/) but not yet
   * installed: that complete directory is the current intermediate until the rotation finishes.
   */
  async pendingRotation(): Promise<Issuer | undefined> {
    const gen = Number((await fsp.readFile(path.join(this.nextDir, 'generation'), 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(gen) || gen < 2 || !(await exists(path.join(this.nextDir, 'int.crt')))) return undefined;
    return this.intermediateAt(this.nextDir, gen);
  }

  async ensureLayout(): Promise<void> {
    await ensureDir(this.dir);
    await ensureDir(this.issuedDir);
  }

  /** Runs a state change under the CA lock, after repairing anything a killed run left behind. */
  async change<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (!(await exists(this.dir))) throw new RivetError(`CA directory ${this.dir} does not exist — run \`rivet-ca init\` or set RIVET_CA_DIR`, 'no_ca');
    return withLock(this.lockFile, what, async () => {
      await this.recover();
      if (this.repairCrls && (await exists(this.crlPendingFile))) {
        await this.repairCrls();
        await fsp.rm(this.crlPendingFile, { force: true });
      }
      return fn();
    }, { onWait: (holder) => process.stderr.write(`rivet-ca: waiting for the CA lock held by ${holder}\n`) });
  }

  private async recover(): Promise<void> {
    await removeStaleTemps(this.previousDir);
    await removeStaleTemps(this.retiredDir);
    const dirs = [this.dir, this.issuedDir, this.rootDir, this.intermediateDir];
    try { for (const n of await fsp.readdir(this.previousDir)) dirs.push(path.join(this.previousDir, n)); } catch { /* none */ }
    for (const d of dirs) {
      await removeStaleTemps(d);
      if (d !== this.dir && d !== this.issuedDir) await recoverOpensslDb(d);
    }
    if (await exists(this.nextDir)) {
      // Loaded here, not at the top: rotate.ts builds on modules that import this one.
      const { resumeRotation } = await import('./rotate.ts');
      await resumeRotation(this);
    }
  }
}

/**
 * `openssl ca` commits by writing index.txt.new (and the certs), then renaming index.txt to .old
 * and .new to index.txt. Killed before the first rename: roll back (drop .new and the orphan
 * certs it wrote). Killed between the renames: roll forward (.new is complete).
 */
export async function recoverOpensslDb(dir: string): Promise<void> {
  const p = (n: string) => path.join(dir, n);
  for (const base of ['index.txt', 'index.txt.attr', 'crlnumber', 'serial']) {
    if (!(await exists(p(`${base}.new`)))) continue;
    if (!(await exists(p(base)))) {
      await fsp.rename(p(`${base}.new`), p(base));
      continue;
    }
    await fsp.rm(p(`${base}.new`), { force: true });
    if (base === 'index.txt') await removeOrphanCerts(dir);
  }
}

async function removeOrphanCerts(dir: string): Promise<void> {
  const index = await fsp.readFile(path.join(dir, 'index.txt'), 'utf8').catch(() => '');
  const known = new Set(index.split('\n').map((l) => l.split('\t')[3]?.toUpperCase()).filter(Boolean));
  const certDir = path.join(dir, 'newcerts');
  for (const name of await fsp.readdir(certDir).catch(() => [] as string[])) {
    const serial = name.replace(/\.pem$/, '').toUpperCase();
    if (!known.has(serial)) await fsp.rm(path.join(certDir, name), { force: true });
  }
}
