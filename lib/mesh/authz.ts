// Per-agent allow-lists (seed: "Auth says who you are; allow-lists say what you're allowed to
// call"). Default deny: an identity or action not written down is refused. The file is JSON,
// `{ "<cn>": ["<action>", "<prefix>.*", …] }`, and is reloaded when it changes; a broken edit keeps
// the last good list (and reports) rather than opening or closing everything, while a deleted or
// unreadable file denies everything (and reports): removing the list must never leave old grants.
import fs from 'node:fs';
import path from 'node:path';
import { followFiles } from './watch.ts';
import { RivetError, show } from '../core/errors.ts';
import { identityFromCommonName } from '../core/identity.ts';
import { MeshAuthError, type PeerIdentity } from './peer.ts';
import type { Authenticated } from './authn.ts';
import { defaultDomain } from './tls.ts';

/** The allow-list key for callers that authenticated with the phase-0.5 legacy bearer. */
export const LEGACY_BEARER_KEY = '@legacy-bearer';

export type AllowListData = Record<string, readonly string[]>;

export type AllowList = {
  readonly file?: string;
  /** The rules in force now. */
  rules(): AllowListData;
  /** Stops watching the file. */
  close(): void;
};

/** Checks the shape and every key; throws naming the first bad entry. */
export function parseAllowList(data: unknown, domain?: string, where = 'allow-list'): AllowListData {
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new RivetError(`${where} must be a JSON object { "<cn>": ["<action>", …] }`, 'bad_allow_list');
  const d = defaultDomain(domain);
  const out: Record<string, string[]> = {};
  for (const [cn, actions] of Object.entries(data as Record<string, unknown>)) {
    if (cn !== LEGACY_BEARER_KEY) {
      try {
        identityFromCommonName(cn, d);
      } catch (err) {
        throw new RivetError(
          `${where}: key ${show(cn)} is not a certificate CN (${(err as Error).message})`,
          'bad_allow_list',
        );
      }
    }
    if (!Array.isArray(actions) || actions.some((a) => typeof a !== 'string' || a.length === 0)) {
      throw new RivetError(
        `${where}: ${show(cn)} must map to a list of actions ("tools.call", "memory.*" or "*")`,
        'bad_allow_list',
      );
    }
    const bad = actions.find((a: string) => !validPattern(a));
    if (bad !== undefined) {
      const stem = String(bad).replace(/\*.*$/, '').replace(/\.$/, '');
      const hint = stem
        ? ` — write ${show(stem)} for that one action, or ${show(`${stem.split('.').slice(0, -1).join('.') || stem}.*`)} for everything under a prefix`
        : '';
      throw new RivetError(
        `${where}: ${show(cn)} has the pattern ${show(bad)}: "*" is allowed only alone or as a whole last segment ("memory.*")${hint}`,
        'bad_allow_list',
      );
    }
    out[cn] = [...actions];
  }
  return out;
}

/** An allow-list held in memory (tests, or rules built in code). */
export function allowListFrom(data: AllowListData, domain?: string): AllowList {
  const rules = parseAllowList(data, domain);
  return { rules: () => rules, close: () => {} };
}

export type AllowListFileOptions = {
  domain?: string;
  onReload?: () => void;
  onError?: (err: Error) => void;
  debounceMs?: number;
};

/** Loads an allow-list file (it must exist and be valid now) and follows later edits. */
export function loadAllowList(file: string, opts: AllowListFileOptions = {}): AllowList {
  const abs = path.resolve(file);
  // What was last read, so a change seen twice (watch event and stamp poll) reloads once, and the
  // same failure is reported once.
  let seen: string | undefined;
  const read = () => {
    let text: string;
    try {
      text = fs.readFileSync(abs, 'utf8');
    } catch (err) {
      seen = undefined;
      throw new RivetError(
        `cannot read allow-list ${show(abs)} (${(err as NodeJS.ErrnoException).code}) — create it: { "<cn>": ["<action>"] }; until then every call is denied`,
        'no_allow_list',
      );
    }
    if (text === seen) return undefined;
    seen = text;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new RivetError(`allow-list ${show(abs)} is not valid JSON: ${(err as Error).message}`, 'bad_allow_list');
    }
    return parseAllowList(json, opts.domain, `allow-list ${abs}`);
  };
  let rules = read()!;
  let missing = false;
  // The directory is watched, not the file: editors and atomic writers replace the file by rename.
  const stop = followFiles(
    [abs],
    () => {
      try {
        const next = read();
        missing = false;
        if (next) {
          rules = next;
          opts.onReload?.();
        }
      } catch (err) {
        // Gone or unreadable: deny everything until it is back. Broken JSON: keep the last good list.
        if ((err as RivetError).code === 'no_allow_list') {
          rules = {};
          if (missing) return;
          missing = true;
        }
        opts.onError?.(err as Error);
      }
    },
    { debounceMs: opts.debounceMs, onError: opts.onError },
  );
  return { file: abs, rules: () => rules, close: stop };
}

/** `*` alone, `<prefix>.*` (a whole last segment), or an exact action without `*`. */
function validPattern(p: string): boolean {
  if (p === '*') return true;
  const star = p.indexOf('*');
  return star === -1 || (star === p.length - 1 && p.endsWith('.*') && p.length > 2 && !p.startsWith('.'));
}

function matches(pattern: string, action: string): boolean {
  if (pattern === '*') return true;
  // `memory.*` covers `memory.read` and `memory.read.all`, never `memoryx` nor `memory` itself.
  return pattern.endsWith('.*') ? action.startsWith(pattern.slice(0, -1)) : pattern === action;
}

/** Throws a 403 MeshAuthError unless `who` may perform `action`. Default deny. */
export function authorize(who: PeerIdentity | Authenticated, action: string, list: AllowList): void {
  const key = 'method' in who ? (who.legacy ? LEGACY_BEARER_KEY : who.identity.cn) : who.cn;
  if (typeof action !== 'string' || action.length === 0)
    throw new MeshAuthError(`${show(key)} asked for an empty action — name the action to authorize`, 'bad_action');
  const allowed = list.rules()[key] ?? [];
  if (allowed.some((p) => matches(p, action))) return;
  const where = list.file ? ` in ${list.file}` : '';
  throw new MeshAuthError(
    `${show(key)} may not ${show(action)} — add it to the allow-list${where} if it should`,
    'forbidden',
  );
}
