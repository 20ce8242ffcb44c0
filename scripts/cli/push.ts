// `rivet-ca push` and the push that follows every change of what nodes need (revoke, crl,
// rotate-intermediate, tidy, root crl, renew): one report format, one queue (lib/distribute/push-queue.ts).
import type { CommandModule } from 'yargs';
import { context, print, printJson, run, type GlobalArgs } from './common.ts';
import type { Ca } from '../../lib/ca/handle.ts';
import type { Config } from '../../lib/sys/config.ts';
import type { PushOptions } from '../../lib/distribute/push.ts';
import type { PushOutcome, PushRun } from '../../lib/distribute/push-queue.ts';
import { RivetError, UsageError, show } from '../../lib/core/errors.ts';
import { parseIdentityOf, type NodeId } from '../../lib/core/identity.ts';

// Loaded when a push happens, not at start-up: the push brings https and tls (scripts/launch.mjs).
const pushLib = () => import('../../lib/distribute/push-queue.ts');

/** Push settings, checked before anything changes (a bad template is a usage error, exit 2). */
export async function pushSettings(config: Config, ca: Ca): Promise<PushOptions> {
  const { pushOptionsFrom } = await import('../../lib/distribute/push.ts');
  return pushOptionsFrom(config, ca.domain);
}

export const PUSH_OPTION = {
  type: 'boolean',
  default: true,
  describe: 'push crl.pem and the chain to every node (RIVET_CRL_PUSH_URL); --no-push to skip',
} as const;
export const STRICT_OPTION = {
  type: 'boolean',
  describe: 'exit 1 while any node has not acknowledged the new CRLs (after the first attempt)',
} as const;

const line = (o: PushOutcome) =>
  `push ${o.acknowledged ? 'ok    ' : o.ok ? 'behind' : 'FAILED'} ${o.node} ${o.ms} ms — ${o.message}${o.queued ? ` — queued, retry ${o.queued.attempts} at ${o.queued.next}` : ''}`;

/** Prints the per-node lines and the summary; with `strict`, a node still queued is an error. */
export function reportPush(r: PushRun, opts: { strict?: boolean } = {}): void {
  if (r.outcomes.length === 0 && r.pullOnly.length === 0)
    return print('push: no node holds a valid node certificate — nothing to push to');
  for (const o of r.outcomes) print(line(o));
  const queued = r.outcomes.filter((o) => !o.acknowledged);
  print(
    `push: ${r.outcomes.length - queued.length}/${r.outcomes.length} nodes updated${queued.length ? `; the others catch up by pull and stay queued: ${queued.map((o) => o.node).join(', ')} — retried by \`rivet-ca serve\` and \`make renew\`, or \`rivet-ca push\` now` : ''}${r.pullOnly.length ? `; pull-only (not pushed): ${r.pullOnly.join(', ')}` : ''}`,
  );
  if (opts.strict) failIfOutstanding(r);
}

/** `--strict`: exit 1 (push_outstanding) while a node has not acknowledged, after the first attempt. */
export function failIfOutstanding(r: PushRun): void {
  const queued = r.outcomes.filter((o) => !o.acknowledged).map((o) => o.node);
  if (queued.length)
    throw new RivetError(
      `${queued.length} node(s) have not acknowledged the new CRLs: ${queued.join(', ')} — they stay queued and are retried; see \`rivet-ca status\``,
      'push_outstanding',
    );
}

export async function pushNow(ca: Ca, options: PushOptions, nodes?: readonly NodeId[]): Promise<PushRun> {
  return (await pushLib()).pushAndRecord(ca, options, nodes);
}

export async function retryQueuedOnce(ca: Ca, options: PushOptions): Promise<PushOutcome[]> {
  return (await pushLib()).retryQueued(ca, options, { all: true });
}

type PushArgs = GlobalArgs & { node?: string[]; pullOnly?: string[]; pushable?: string[] };

const nodeIds = (ca: Ca, names: readonly string[] | undefined, flag: string): NodeId[] =>
  (names ?? []).map((n) => {
    const id = parseIdentityOf('node', String(n), ca.domain);
    if (id.kind !== 'node') throw new UsageError(`${flag} ${show(n)} must be a node id, like ct115`);
    return id.nodeId;
  });

export const commands: CommandModule<GlobalArgs, any>[] = [
  {
    command: 'push',
    describe: 'push crl.pem and the chain to every node now (or --node N); mark nodes --pull-only / --pushable',
    builder: (y) =>
      y
        .option('node', { type: 'string', array: true, describe: 'push only to these nodes' })
        .option('pull-only', {
          type: 'string',
          array: true,
          describe: 'mark nodes without a mesh server: never pushed, never counted as failed',
        })
        .option('pushable', { type: 'string', array: true, describe: 'undo --pull-only' }),
    handler: run(async (args: PushArgs) => {
      const { ca, config } = context(args);
      const pullOnly = nodeIds(ca, args.pullOnly, '--pull-only');
      const pushable = nodeIds(ca, args.pushable, '--pushable');
      if (pullOnly.length || pushable.length) {
        if (args.node?.length)
          throw new UsageError('give --node to push, or --pull-only / --pushable to mark nodes — not both');
        const { setPullOnly } = await import('../../lib/distribute/push-state.ts');
        if (pullOnly.length) await setPullOnly(ca, pullOnly, true);
        if (pushable.length) await setPullOnly(ca, pushable, false);
        if (args.json) return printJson({ pullOnly, pushable });
        if (pullOnly.length)
          print(
            `pull-only: ${pullOnly.join(', ')} — not pushed to, not counted as failed; they keep current by their own pull (provision-ct fetch-crl)`,
          );
        if (pushable.length) print(`pushable: ${pushable.join(', ')} — pushed to from the next push on`);
        return;
      }
      const options = await pushSettings(config, ca);
      const wanted = nodeIds(ca, args.node, '--node');
      if (wanted.length) {
        const { pushTargets } = await import('../../lib/distribute/push.ts');
        const { readPushState } = await import('../../lib/distribute/push-state.ts');
        const live = new Set<string>(await pushTargets(ca));
        const { pullOnly: marked } = await readPushState(ca);
        for (const n of wanted) {
          if (!live.has(n))
            throw new UsageError(
              `node ${show(n)} holds no valid node certificate — nothing to push to (see \`rivet-ca list\`)`,
              'not_found',
            );
          if (marked.includes(n))
            throw new UsageError(`node ${show(n)} is pull-only — \`rivet-ca push --pushable ${n}\` first`);
        }
      }
      const r = await pushNow(ca, options, wanted.length ? wanted : undefined);
      if (args.json) {
        printJson(r);
        return failIfOutstanding(r);
      }
      reportPush(r, { strict: true });
    }),
  },
];
