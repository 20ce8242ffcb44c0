#!/usr/bin/env -S sh -c 'exec node "$(dirname "$(readlink -f "$0")")/launch.mjs" "$0" "$@"'
// provision-ct: run on a node (DESIGN §6). enroll once with the bootstrap secret or a one-time token,
// then renew over mTLS, pull the CRL, report status. The work is in lib/node/; this file parses
// arguments and prints. The secret comes from the environment, .env or --token-file — never argv.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadConfig, bootstrapSecret } from '../lib/sys/config.ts';
import { UsageError } from '../lib/core/errors.ts';
import { parseSan } from '../lib/core/san.ts';
import { agentId, nodeId } from '../lib/core/identity.ts';
import { parseDuration } from '../lib/core/duration.ts';
import { pullCrl } from '../lib/distribute/pull.ts';
import { withSkewHint } from '../lib/node/skew.ts';
import {
  datahubUrl,
  endpointOf,
  normalizeFingerprint,
  readSettings,
  servername,
  type NodeSettings,
} from '../lib/node/settings.ts';
import { enrollNode, describeEnrolled } from '../lib/node/enroll.ts';
import { renewNode, describeRenew, requireSettings } from '../lib/node/renew.ts';
import { nodeStatus, describeStatus } from '../lib/node/status.ts';
import { installTimer, type TimerKind } from '../lib/node/timer.ts';
import { readSecretFile, run as runCommand, strictProgram } from './cli/common.ts';
import { checkOwnership } from '../lib/sys/ownership.ts';

const PROG = 'provision-ct';
process.umask(0o077);

type Common = { nodeDir?: string; domain?: string; json?: boolean };
const print = (line = '') => process.stdout.write(`${line}\n`);
const warn = (line: string) => process.stderr.write(`${PROG}: warning: ${line}\n`);

const run = <A,>(fn: (args: A) => Promise<number | void>) => runCommand(fn, PROG);

/** The configuration; a node dir another user could change is refused unless `report` (status lists it). */
function configOf(args: Common, opts: { report?: boolean } = {}) {
  const config = loadConfig({ nodeDir: args.nodeDir, domain: args.domain });
  if (!opts.report) checkOwnership(config.nodeDir, 'node directory');
  return config;
}

/** The bootstrap secret (env / .env / _FILE, legacy MESH_SECRET) or a token file; read only when needed. */
function credential(tokenFile: string | undefined, env: Record<string, string | undefined>): () => string {
  return () => {
    const value = tokenFile !== undefined ? readSecretFile(tokenFile, 'token') : bootstrapSecret(env, warn);
    if (value === undefined) {
      throw new UsageError(
        'no bootstrap secret — set RIVET_BOOTSTRAP_SECRET (or RIVET_BOOTSTRAP_SECRET_FILE, or put it in .env), or give --token-file with a token from `rivet-ca token <node-id>`; never on the command line',
      );
    }
    if (!/^[\x20-\x7e]{1,1024}$/.test(value))
      throw new UsageError(
        `the ${tokenFile !== undefined ? 'token file' : 'bootstrap secret'} must be one line of printable ASCII (at most 1024 characters)`,
      );
    return value;
  };
}

type EnrollArgs = Common & {
  nodeId?: string;
  datahub?: string;
  caFingerprint?: string;
  servername?: string;
  san?: string[];
  agent?: string[];
  tokenFile?: string;
  force?: boolean;
  installTimer?: TimerKind;
  timerRoot: string;
};

const enroll = run(async (args: EnrollArgs) => {
  const config = configOf(args);
  const had = await readSettings(config.nodeDir).catch(() => undefined);
  const need = (v: string | undefined, flag: string, env: string) => {
    if (v === undefined || v === '') throw new UsageError(`${flag} is required (or ${env} in the environment / .env)`);
    return v;
  };
  const want: NodeSettings = {
    nodeId: nodeId(need(args.nodeId ?? had?.nodeId, '--node-id', 'a previous enrollment')),
    domain: config.domain,
    datahub: datahubUrl(need(args.datahub ?? config.datahubUrl ?? had?.datahub, '--datahub', 'RIVET_DATAHUB_URL')),
    servername: servername(
      args.servername ??
        config.env.RIVET_DATAHUB_SERVERNAME ??
        (args.datahub === undefined ? had?.servername : undefined),
    ),
    caFingerprint: normalizeFingerprint(
      need(
        args.caFingerprint ?? config.caFingerprint ?? had?.caFingerprint,
        '--ca-fingerprint',
        'RIVET_CA_FINGERPRINT',
      ),
    ),
    agents: (args.agent ?? []).map((a) => agentId(String(a))),
    sans: (args.san ?? had?.sans ?? []).map((s) => String(s)),
  };
  for (const s of want.sans) parseSan(s); // the service applies the policy; syntax is checked here, before any key is made
  if (args.timerRoot !== '/' && !args.installTimer)
    throw new UsageError('--timer-root needs --install-timer systemd|cron');
  const r = await enrollNode({
    dir: config.nodeDir,
    want,
    credential: credential(args.tokenFile, config.env),
    force: args.force,
    log: print,
  });
  print(describeEnrolled(r));
  if (args.installTimer) {
    const t = await installTimer(args.installTimer, {
      root: args.timerRoot,
      nodeDir: config.nodeDir,
      caDir: config.caDir,
    });
    print(
      t.changed.length
        ? `timer (${args.installTimer}): wrote ${t.changed.join(', ')}`
        : `timer (${args.installTimer}): already installed — nothing changed`,
    );
    if (t.next) print(`timer: ${t.next}`);
  }
});

const renew = run(async (args: Common & { within: string }) => {
  const withinMs = parseDuration(args.within, '--within');
  const config = configOf(args);
  const lines = await renewNode(config.nodeDir, { withinMs, log: print });
  if (args.json) print(JSON.stringify(lines, null, 2));
  else for (const l of lines) print(describeRenew(l));
  return lines.some((l) => l.action === 'failed') ? 1 : 0;
});

const fetchCrl = run(async (args: Common) => {
  const config = configOf(args);
  const s = await requireSettings(config.nodeDir);
  const ep = endpointOf(s);
  // A CRL dated ahead of this host's clock (or lapsed by it) is refused; the hint says if the clock is why.
  const r = await withSkewHint(ep, new URL(ep.base).hostname, () =>
    pullCrl({ dir: config.nodeDir, datahub: ep.base, connectTo: ep.connectTo }),
  );
  if (args.json) {
    print(JSON.stringify(r, null, 2));
    return;
  }
  print(`crl.pem ${r.installed ? 'installed' : 'unchanged'} from ${s.datahub}/crl.pem`);
  for (const c of r.crls)
    print(`  ${c.issuer}: crlNumber ${c.crlNumber}, ${c.revoked} revoked, next update ${c.nextUpdate ?? '-'}`);
});

const status = run(async (args: Common & { within: string }) => {
  const config = configOf(args, { report: true });
  const st = await nodeStatus(config.nodeDir, {
    withinMs: parseDuration(args.within, '--within'),
    domain: config.domain,
  });
  if (args.json) print(JSON.stringify(st, null, 2));
  else for (const l of describeStatus(st)) print(l);
  return st.problems.length ? 1 : 0;
});

const within = { type: 'string', default: '30d', describe: 'renew once less than this is left (e.g. 30d)' } as const;

// Not awaited: the bundle is CommonJS (scripts/build.mts), which has no top-level await. A
// rejection still ends the process with exit 1, as an unhandled rejection.
void strictProgram(yargs(hideBin(process.argv)), PROG)
  .usage('$0 <command> — enroll this node in the Rivet mesh CA and keep its certificates fresh')
  .option('node-dir', { type: 'string', describe: 'node directory (env RIVET_NODE_DIR, default /etc/rivetos)' })
  .option('domain', { type: 'string', describe: 'mesh DNS domain (env RIVET_MESH_DOMAIN, default mesh)' })
  .option('json', { type: 'boolean', describe: 'machine-readable output' })
  .command(
    'enroll',
    'enroll once: pin the CA, make the key here, get node (and agent) certificates',
    (y) =>
      y
        .option('node-id', { type: 'string', describe: 'this node, e.g. ct115 (remembered in node.json)' })
        .option('datahub', {
          type: 'string',
          describe: 'enrollment service URL, e.g. https://ct110.mesh:8443 (env RIVET_DATAHUB_URL)',
        })
        .option('ca-fingerprint', {
          type: 'string',
          describe: 'sha256:<hex> of the root, from `rivet-ca status` (env RIVET_CA_FINGERPRINT)',
        })
        .option('servername', {
          type: 'string',
          describe:
            'name the datahub certificate carries when --datahub is an address, e.g. ct110.mesh (env RIVET_DATAHUB_SERVERNAME)',
        })
        .option('san', {
          type: 'string',
          array: true,
          describe: 'extra SAN for the node cert, DNS:<name> or IP:<address> (repeatable)',
        })
        .option('agent', {
          type: 'string',
          array: true,
          describe: 'also mint agents/<id>.crt for this agent (repeatable)',
        })
        .option('token-file', {
          type: 'string',
          describe: 'file holding a one-time token (`rivet-ca token <node-id>`) instead of the bootstrap secret',
        })
        .option('force', {
          type: 'boolean',
          describe: 're-enroll with a new key (the operator must revoke the current cert first)',
        })
        .option('install-timer', {
          choices: ['systemd', 'cron'] as const,
          describe: 'install the daily renewal + 15-minute CRL pull',
        })
        .option('timer-root', {
          type: 'string',
          default: '/',
          describe: 'install timer files under this root (tests, images)',
        }),
    enroll,
  )
  .command(
    'renew',
    'renew over mTLS when due (key re-used; agents piggyback)',
    (y) => y.option('within', within),
    renew,
  )
  .command(
    'fetch-crl',
    'pull crl.pem from the datahub; install it only if signed by the chain and not older',
    (y) => y,
    fetchCrl,
  )
  .command(
    'status',
    'installed certificates, days left, CRL age; exit 1 if something needs attention',
    (y) => y.option('within', within),
    status,
  )
  .parseAsync();
