#!/usr/bin/env -S sh -c 'exec node "$(dirname "$(readlink -f "$0")")/launch.mjs" "$0" "$@"'
// rivet-ca: the CA operator's tool (DESIGN §4). Commands live in scripts/cli/, one file per group;
// this file only wires them to yargs. Usage errors exit 2, other failures 1.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { PROG, globalOptions, strictProgram } from './cli/common.ts';
import { commands as authority } from './cli/authority.ts';
import { commands as issue } from './cli/issue.ts';
import { commands as lifecycle } from './cli/lifecycle.ts';
import { commands as inspect } from './cli/inspect.ts';
import { extraCommands } from './cli/extra.ts';

// Files openssl writes itself (database, copies) are CA-private; our own writes set exact modes.
process.umask(0o077);

const cli = strictProgram(globalOptions(yargs(hideBin(process.argv))), PROG)
  .usage(`$0 <command> — the Rivet mesh certificate authority`)
  .option('json', { type: 'boolean', describe: 'machine-readable output' })
  .command([...authority, ...issue, ...lifecycle, ...inspect, ...extraCommands]);

// Not awaited: the bundle is CommonJS (scripts/build.mts), which has no top-level await. A
// rejection still ends the process with exit 1, as an unhandled rejection.
void cli.parseAsync();
