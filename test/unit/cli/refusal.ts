// A refusal as the CLI would print it, without starting the CLI: the error goes through the CLI's
// own exit door (scripts/cli/common.ts failure), which must make it exit 2 with one line.
import * as assert from 'uvu/assert';
import { failure } from '../../../scripts/cli/common.ts';

const STACK = /\n\s+at .+[:(]\d+|at .*\.(ts|js|mjs):\d+/;

export async function assertRefused(what: string, fn: () => unknown, message: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) assert.unreachable(`${what} was accepted`);
  const { status, text } = failure(caught);
  assert.is(status, 2, `${what}: exit status for ${text}`);
  assert.match(text, /^rivet-ca: /, `${what}: leaves by the one door`);
  assert.not.match(text.trimEnd(), /\n/, `${what}: one line: ${text}`);
  assert.not.match(text, STACK, `${what}: no stack trace`);
  assert.match(text, message, `${what}: message`);
}
