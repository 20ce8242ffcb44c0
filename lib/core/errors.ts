// The two kinds of failure the CLI distinguishes (DESIGN §4): a user's mistake (exit 2, nothing
// changed) and everything else (exit 1). Messages are one line: the thing, the value, the fix.

/** Bad input or usage. Nothing was changed. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string, readonly code = 'bad_input') {
    super(message);
    this.name = 'UsageError';
  }
}

/** An operation that could not be carried out (state, environment, openssl). */
export class RivetError extends Error {
  readonly exitCode = 1;
  constructor(message: string, readonly code = 'failed', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RivetError';
  }
}

/** openssl exited non-zero: carries the argv (never a secret, by construction) and its stderr. */
export class OpensslError extends RivetError {
  constructor(readonly argv: readonly string[], readonly stderr: string, readonly exit: number | undefined) {
    super(`openssl ${argv[0] ?? ''} failed (exit ${exit ?? '?'}): ${firstLine(stderr)}`, 'openssl');
    this.name = 'OpensslError';
  }
  detail(): string {
    return `command: openssl ${this.argv.join(' ')}\n${this.stderr.trim()}`;
  }
}

function firstLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('Using configuration from'));
  // openssl's own error lines look like `80ABCD:error:0700006C:…:reason:file:line:detail`.
  const reason = lines.find((l) => /:error:/.test(l))?.split(':').slice(5).join(':');
  return lines.find((l) => !/:error:/.test(l)) ?? reason ?? 'no output';
}

/** Shows a user-supplied value safely on one line (newlines, NULs and quotes escaped). */
export function show(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  const clipped = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  return JSON.stringify(clipped);
}
