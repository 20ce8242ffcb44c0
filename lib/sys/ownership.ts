// Who may change the CA dir and the node dir (DESIGN §8): the running user or root, nobody else.
// A directory another local user created (or can write to) is theirs to rewrite: they swapped
// enroll-tokens.json for a token of their own and rivet-ca.crt for another CA, and every command
// trusted what it read. So before a command reads either directory: every directory above it is
// owned by root or us and not writable by group or others (unless sticky, like /tmp, where only
// an entry's owner may rename it), and the directory and everything in it is owned by root or us
// and not writable by group or others. Otherwise: refuse, with the one-line fix.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../core/errors.ts';

export type OwnershipProblem = { path: string; why: string; fix: string };

/** The sticky bit: in such a directory only an entry's owner may rename or remove it. */
const STICKY = 0o1000;
const uid = () => process.getuid?.() ?? 0;

function who(): { uid: number; name: string } {
  const id = uid();
  if (id === 0) return { uid: 0, name: 'root' };
  try {
    return { uid: id, name: os.userInfo().username };
  } catch {
    return { uid: id, name: String(id) };
  }
}

/** Why `st` may be changed by someone other than us or root, or undefined when it may not. */
function unsafe(st: fs.Stats, isAncestor: boolean): string | undefined {
  if (st.uid !== 0 && st.uid !== uid()) return `is owned by uid ${st.uid}, not by root or by uid ${uid()} running this`;
  if (st.isSymbolicLink()) return undefined; // a link's own mode means nothing; its target is checked
  const writable = st.mode & 0o022;
  if (!writable) return undefined;
  if (isAncestor && st.isDirectory() && st.mode & STICKY) return undefined;
  const by = writable === 0o022 ? 'its group and others' : writable & 0o020 ? 'its group' : 'others';
  return `is writable by ${by} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`;
}

function realpathOrUndefined(p: string): string | undefined {
  try {
    return fs.realpathSync(p);
  } catch {
    return undefined;
  }
}

function nearestExisting(p: string): string {
  let d = path.dirname(p);
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  return realpathOrUndefined(d) ?? d;
}

/**
 * Everything wrong with `dir` (a CA dir or node dir) and the directories above it, or [] when
 * it is safe. A directory that does not exist yet has no problems of its own (we create it 0700).
 */
export function ownershipProblems(dir: string): OwnershipProblem[] {
  const me = who();
  const problems: OwnershipProblem[] = [];
  const real = realpathOrUndefined(path.resolve(dir));
  const treeFix = (d: string) => `chown -R ${me.name}: ${d} && chmod -R go-w ${d}`;
  // The directories above (of the nearest one that exists), and those above the name as given
  // when it is a link: who can write there can replace the whole directory.
  const ancestors = (start: string) => {
    for (let up = start; ; up = path.dirname(up)) {
      const st = fs.lstatSync(up, { throwIfNoEntry: false });
      const why = st && unsafe(st, true);
      if (why && !problems.some((p) => p.path === up))
        problems.push({ path: up, why, fix: `chown ${me.name}: ${up} && chmod go-w ${up}` });
      if (path.dirname(up) === up) return;
    }
  };
  const given = path.resolve(dir);
  ancestors(real === undefined ? nearestExisting(given) : path.dirname(real));
  if (real !== undefined && real !== given) ancestors(given);
  if (real === undefined) return problems;
  const walk = (p: string) => {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) return; // removed while we looked
    const why = unsafe(st, false);
    if (why) problems.push({ path: p, why, fix: treeFix(real) });
    if (st.isSymbolicLink()) {
      const target = fs.statSync(p, { throwIfNoEntry: false });
      const whyTarget = target && unsafe(target, false);
      if (whyTarget)
        problems.push({
          path: p,
          why: `points to a file that ${whyTarget}`,
          fix: `replace the link ${p} with a file of its own`,
        });
    } else if (st.isDirectory()) {
      let names: string[] = [];
      try {
        names = fs.readdirSync(p);
      } catch {
        /* unreadable: the command itself will say so */
      }
      for (const name of names) walk(path.join(p, name));
    }
  };
  walk(real);
  return problems;
}

/** Refuses (exit 2, nothing read or changed) when `dir` could be changed by another user. */
export function checkOwnership(dir: string, what: string): void {
  const problems = ownershipProblems(dir);
  if (problems.length === 0) return;
  const p = problems[0]!;
  const more = problems.length > 1 ? `, and ${problems.length - 1} more path(s) like it` : '';
  throw new UsageError(
    `${what} ${dir}: ${p.path} ${p.why}${more} — another user could swap its files; fix: ${p.fix}`,
    'unsafe_ownership',
  );
}
