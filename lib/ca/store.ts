// Where CA state lives (DESIGN §2): the paths of one CA directory and which issuers it holds. Every
// change to that state goes through lib/sign/transaction.ts (lock, recover, repair, then the change).
import fsp from 'node:fs/promises';
import path from 'node:path';
import { ensureDir, exists } from '../sys/files.ts';
import { RivetError } from '../core/errors.ts';

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
  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  get rootDir() {
    return path.join(this.dir, 'root');
  }
  get intermediateDir() {
    return path.join(this.dir, 'intermediate');
  }
  get previousDir() {
    return path.join(this.intermediateDir, 'previous');
  }
  /** Intermediates whose leaves have all expired: out of chain.pem and crl.pem, key removed. */
  get retiredDir() {
    return path.join(this.intermediateDir, 'retired');
  }
  /** A rotation's new intermediate between its commit and its installation (lib/ops/rotate.ts). */
  get nextDir() {
    return path.join(this.dir, 'intermediate.next');
  }
  get issuedDir() {
    return path.join(this.dir, 'issued');
  }
  get chainFile() {
    return path.join(this.intermediateDir, 'chain.pem');
  }
  get crlBundle() {
    return path.join(this.dir, 'crl.pem');
  }
  get auditLog() {
    return path.join(this.dir, 'audit.log');
  }
  get lockFile() {
    return path.join(this.dir, '.lock');
  }
  get generationFile() {
    return path.join(this.intermediateDir, 'generation');
  }
  /** Exists while a database change that the CRLs must reflect (revoke, tidy) is in flight. */
  get crlPendingFile() {
    return path.join(this.dir, '.crl-pending');
  }

  issued(stem: string, ext: 'crt' | 'key' | 'p12'): string {
    return path.join(this.issuedDir, `${stem}.${ext}`);
  }

  root(): Issuer {
    const d = this.rootDir;
    return {
      kind: 'root',
      dir: d,
      cert: path.join(d, 'ca.crt'),
      key: path.join(d, 'ca.key'),
      crl: path.join(d, 'crl.pem'),
      generation: 0,
    };
  }

  intermediateAt(dir: string, generation: number): Issuer {
    return {
      kind: 'intermediate',
      dir,
      cert: path.join(dir, 'int.crt'),
      key: path.join(dir, 'int.key'),
      crl: path.join(dir, 'crl.pem'),
      generation,
    };
  }

  async hasRoot(): Promise<boolean> {
    return exists(this.root().cert);
  }

  /** The intermediate that issues from now on; throws with the fix when there is none. */
  async current(): Promise<Issuer> {
    const pending = await this.pendingRotation();
    if (pending) return pending;
    const gen = Number((await fsp.readFile(this.generationFile, 'utf8').catch(() => '')).trim());
    const issuer = this.intermediateAt(this.intermediateDir, Number.isInteger(gen) && gen > 0 ? gen : 1);
    if (!(await exists(issuer.cert))) {
      throw new RivetError(
        (await this.hasRoot())
          ? `no intermediate in ${this.dir} — run \`rivet-ca issue-intermediate\` first`
          : `no CA in ${this.dir} — run \`rivet-ca init\` then \`rivet-ca issue-intermediate\` (or set RIVET_CA_DIR)`,
        'no_ca',
      );
    }
    return issuer;
  }

  /** Every intermediate whose leaves may still be valid: the current one first, then older ones. */
  async intermediates(): Promise<Issuer[]> {
    const current = await this.current();
    let names: string[] = [];
    try {
      names = await fsp.readdir(this.previousDir);
    } catch {
      /* none retired yet */
    }
    const older = names
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .sort((a, b) => b - a)
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
}
