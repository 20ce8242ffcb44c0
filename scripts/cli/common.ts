// What every rivet-ca command shares: configuration, the CA handle, output, and the single exit
// door where errors become one readable line and an exit code (DESIGN §4).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { Argv } from 'yargs';
import { loadConfig, type Config } from '../../lib/sys/config.ts';
import { openCa, type Ca } from '../../lib/ca/handle.ts';
import { checkOwnership } from '../../lib/sys/ownership.ts';
import { OpensslError, RivetError, UsageError, show } from '../../lib/core/errors.ts';

export const PROG = 'rivet-ca';

export type GlobalArgs = { caDir?: string; domain?: string; json?: boolean; rootPassphraseFile?: string };

export function globalOptions<T>(y: Argv<T>) {
  return y
    .option('ca-dir', { type: 'string', describe: 'CA directory (env RIVET_CA_DIR, default /shared/rivet-ca)' })
    .option('domain', { type: 'string', describe: 'mesh DNS domain (env RIVET_MESH_DOMAIN, default mesh)' })
    .option('root-passphrase-file', {
      type: 'string',
      describe: 'file holding the passphrase of an encrypted root key',
    });
}

/**
 * The configuration and CA handle of a command. A CA dir another user could change is refused
 * (exit 2) before anything in it is read; `doctor` and `status` pass `report` and list it instead.
 */
export function context(args: GlobalArgs, opts: { report?: boolean } = {}): { config: Config; ca: Ca } {
  const config = loadConfig({ caDir: args.caDir, domain: args.domain });
  if (!opts.report) checkOwnership(config.caDir, 'CA directory');
  const rootPass = args.rootPassphraseFile ?? config.env.RIVET_ROOT_PASSPHRASE_FILE;
  const ca = openCa(config.caDir, config.domain, {
    root: rootPass ? { passphrase: readSecretFile(rootPass, 'root passphrase') } : undefined,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  return { config, ca };
}

/** Reads a secret from a file (never argv); one trailing newline is dropped. */
export function readSecretFile(file: string, what: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`cannot read the ${what} file ${show(file)} — check the path and permissions`);
  }
  const secret = text.replace(/\r?\n$/, '');
  if (!secret) throw new UsageError(`the ${what} file ${show(file)} is empty`);
  return secret;
}

/** Asks for a secret on the terminal without echoing it. */
export async function promptSecret(question: string): Promise<string> {
  if (!process.stdin.isTTY)
    throw new UsageError(
      `${question.replace(/:\s*$/, '')} is needed — give it with --passphrase-file FILE (never on the command line)`,
    );
  // Loaded only when prompting (saves every other start-up loading it), by require: a dynamic
  // import() inside the launcher's vm.Script bundle would print an ExperimentalWarning on Node 20.
  const readline = createRequire(import.meta.url)('node:readline') as typeof import('node:readline');
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const out = rl as unknown as { _writeToOutput: (s: string) => void };
  process.stderr.write(question);
  out._writeToOutput = () => {};
  const answer = await new Promise<string>((resolve) => rl.question('', resolve));
  rl.close();
  process.stderr.write('\n');
  return answer;
}

export async function secretFrom(file: string | undefined, question: string, what: string): Promise<string> {
  return file ? readSecretFile(file, what) : promptSecret(question);
}

// `rivet-ca list | head`: the reader went away. That is the user's choice, not our failure: end
// quietly with the status the command had, instead of an unhandled EPIPE stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw err;
  });
}

export function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Wraps a command handler: every error leaves here, as one line and an exit code. */
// yargs hands handlers loosely typed args; each handler states the shape its builder declares.
export function run<A>(fn: (args: A) => Promise<number | void>, prog = PROG): (args: any) => Promise<void> {
  return async (args: A) => {
    try {
      const code = await fn(args);
      process.exitCode = code ?? 0;
    } catch (err) {
      process.exitCode = report(err, prog);
    }
  };
}

export function report(err: unknown, prog = PROG): number {
  const f = failure(err, prog);
  process.stderr.write(f.text);
  return f.status;
}

/** What the exit door makes of an error: the exit status and the text for stderr (test/unit/cli/). */
export function failure(err: unknown, prog = PROG): { status: number; text: string } {
  if (err instanceof RivetError) {
    return {
      status: err.exitCode,
      text: `${prog}: ${err.message}\n${err instanceof OpensslError ? `${err.detail()}\n` : ''}`,
    };
  }
  const e = err as Error;
  return {
    status: 1,
    text: `${prog}: internal error: ${e?.message ?? String(err)}\n${process.env.RIVET_DEBUG ? `${e?.stack}\n` : ''}`,
  };
}

/**
 * The yargs settings both tools share: identities like "0123" stay text and "a.b" options do not
 * become objects; unknown options are refused; a usage error is one line and exit 2.
 */
export function strictProgram<T>(y: Argv<T>, prog: string): Argv<T> {
  return y
    .scriptName(prog)
    .parserConfiguration({ 'parse-numbers': false, 'parse-positional-numbers': false, 'dot-notation': false })
    .demandCommand(1, 'give a command')
    .strict()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`${prog}: ${String(msg).replace(/\s*\n\s*/g, '; ')} — see \`${prog} --help\`\n`);
      process.exit(2);
    });
}
