// The only place that runs openssl (STYLE: one door). Always an argument array, never a command
// string (opensslEach hands arrays to xargs, which execs openssl without a shell); secrets reach
// openssl by environment (`-passin env:NAME`) or stdin, never by argv, so the argv carried in an
// error is always safe to print.
import { execa } from 'execa';
import { OpensslError, RivetError } from '../core/errors.ts';

export const OPENSSL = process.env.RIVET_OPENSSL ?? 'openssl';

export type OpensslOptions = {
  /** Written to openssl's stdin. */
  input?: string | Uint8Array;
  /** Extra environment, e.g. `{ RIVET_PASS: secret }` for `-passin env:RIVET_PASS`. */
  env?: Record<string, string>;
  cwd?: string;
};

function checkArgv(args: readonly string[]): void {
  for (const a of args) {
    if (typeof a !== 'string' || a.includes('\0'))
      throw new RivetError(`refusing to run openssl with a malformed argument ${JSON.stringify(a)}`);
  }
}

async function run(args: readonly string[], opts: OpensslOptions, encoding: 'utf8' | 'buffer') {
  checkArgv(args);
  const result = await execa(OPENSSL, [...args], {
    input: opts.input,
    env: { OPENSSL_CONF: '/dev/null', ...opts.env },
    cwd: opts.cwd,
    reject: false,
    encoding,
    stripFinalNewline: false,
  }).catch((err: unknown) => {
    throw new RivetError(`cannot run ${OPENSSL}: ${(err as Error).message} — is OpenSSL 3 installed?`, 'openssl');
  });
  if (result.exitCode !== 0 || result.failed) {
    const stderr =
      typeof result.stderr === 'string' ? result.stderr : Buffer.from(result.stderr ?? []).toString('utf8');
    throw new OpensslError(args, stderr || String(result.message ?? ''), result.exitCode);
  }
  return result;
}

/** Runs openssl and returns its stdout as text. */
export async function openssl(args: readonly string[], opts: OpensslOptions = {}): Promise<string> {
  return (await run(args, opts, 'utf8')).stdout as string;
}

/** Runs openssl and returns its stdout as bytes (DER, PKCS#12). */
export async function opensslBytes(args: readonly string[], opts: OpensslOptions = {}): Promise<Buffer> {
  return Buffer.from((await run(args, opts, 'buffer')).stdout as Uint8Array);
}

/**
 * Runs openssl once per argument list, `parallel` at a time, all started by one `xargs` process
 * instead of one fork of this Node process each: forking a Node process costs ~2.5 ms of its main
 * thread here, most of a roster's time. No shell is involved: xargs execs openssl with each list
 * exactly as given (NUL-separated, so any byte but NUL passes through). All lists must have the
 * same length (xargs -n). xargs does not say which run failed: callers check each run's output
 * files and redo a missing one with openssl() to get its error.
 */
export async function opensslEach(
  argvs: readonly (readonly string[])[],
  parallel: number,
  opts: Omit<OpensslOptions, 'input'> = {},
): Promise<void> {
  if (argvs.length === 0) return;
  const n = argvs[0]!.length;
  for (const args of argvs) {
    checkArgv(args);
    if (args.length !== n || n === 0) throw new RivetError('opensslEach needs argument lists of one length', 'openssl');
  }
  await execa('xargs', ['-0', '-n', String(n), '-P', String(parallel), OPENSSL], {
    input: argvs.map((a) => a.join('\0')).join('\0'),
    env: { OPENSSL_CONF: '/dev/null', ...opts.env },
    cwd: opts.cwd,
    reject: false,
  }).catch((err: unknown) => {
    throw new RivetError(`cannot run xargs ${OPENSSL}: ${(err as Error).message}`, 'openssl');
  });
}

/** `openssl version`, parsed; doctor refuses anything older than 3.0. */
export async function opensslVersion(): Promise<{ text: string; major: number; minor: number }> {
  const text = (await openssl(['version'])).trim();
  const m = /OpenSSL (\d+)\.(\d+)/.exec(text);
  return { text, major: Number(m?.[1] ?? 0), minor: Number(m?.[2] ?? 0) };
}
