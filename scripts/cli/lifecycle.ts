// renew, revoke, crl, tidy: the day-to-day life of issued certificates (DESIGN §4.3–4.5, §5).
import type { CommandModule } from 'yargs';
import { context, print, printJson, run, type GlobalArgs } from './common.ts';
import { renewIssued } from '../../lib/ops/renew.ts';
import { revoke } from '../../lib/ops/revoke.ts';
import { tidy } from '../../lib/ops/tidy.ts';
import { parseDuration } from '../../lib/core/duration.ts';
import { ALLOW_SHARED, parseDays, validityFrom } from './issue.ts';
import { REVOCATION_REASONS } from '../../lib/sign/signer.ts';
import { refreshCrls } from '../../lib/ops/crl.ts';
import {
  PUSH_OPTION,
  STRICT_OPTION,
  failIfOutstanding,
  pushNow,
  pushSettings,
  reportPush,
  retryQueuedOnce,
} from './push.ts';
import { readText } from '../../lib/sys/files.ts';

export const commands: CommandModule<GlobalArgs, any>[] = [
  {
    command: 'renew [names..]',
    describe: 'renew due certificates in issued/ (same key, new certificate; agents follow their node)',
    builder: (y) =>
      y
        .positional('names', { type: 'string', array: true, describe: 'renew these now (default: everything due)' })
        .option('within', { type: 'string', default: '30d', describe: 'renew what expires within this (e.g. 30d)' })
        .option('days', { type: 'string', describe: 'validity of renewed certificates in days (default 90)' })
        .option('allow-shared-name', ALLOW_SHARED)
        .option('push', PUSH_OPTION),
    handler: run(
      async (
        args: GlobalArgs & {
          names?: string[];
          within: string;
          days?: string;
          allowSharedName?: boolean;
          push: boolean;
        },
      ) => {
        const withinMs = parseDuration(args.within, '--within');
        const days = parseDays(args.days);
        validityFrom({ days });
        const { ca, config } = context(args);
        const pushOptions = args.push ? await pushSettings(config, ca) : undefined;
        const crlBefore = await readText(ca.store.crlBundle);
        const results = await renewIssued(ca, {
          names: (args.names ?? []).map(String),
          withinMs,
          days,
          allowSharedName: args.allowSharedName,
        });
        // The CA host's own node identity (rivet-ca host) renews with the CA it lives beside.
        if (!args.names?.length) {
          const { renewHostIfDue } = await import('../../lib/node/host.ts');
          try {
            const h = await renewHostIfDue(ca, config.nodeDir, withinMs);
            if (h)
              results.push({
                cn: h.cn,
                action: h.action === 'unchanged' ? 'not-due' : 'renewed',
                serial: h.serial,
                notAfter: h.notAfter,
                why: `CA host node dir ${config.nodeDir}`,
              } as (typeof results)[number]);
          } catch (err) {
            results.push({
              cn: `CA host (${config.nodeDir})`,
              action: 'failed',
              why: (err as Error).message,
            } as (typeof results)[number]);
          }
        }
        // The daily run also drives the push queue: everyone when the CRLs changed (re-signed, or a
        // superseded certificate revoked), else the nodes still queued, once each.
        if (pushOptions) {
          const pushed =
            (await readText(ca.store.crlBundle)) !== crlBefore
              ? await pushNow(ca, pushOptions)
              : { outcomes: await retryQueuedOnce(ca, pushOptions), pullOnly: [] };
          if (!args.json && pushed.outcomes.length) reportPush(pushed); // --json keeps its shape; push-state.json has the results
        }
        if (args.json) printJson(results);
        else {
          for (const r of results.filter((x) => x.action !== 'not-due')) {
            print(
              `${r.action.padEnd(8)} ${r.cn}${r.serial ? ` serial ${r.serial}` : ''}${r.notAfter ? ` until ${r.notAfter.toISOString().slice(0, 10)}` : ''}${r.why ? ` (${r.why})` : ''}`,
            );
          }
          const count = (a: string) => results.filter((r) => r.action === a).length;
          print(
            `renew: ${count('renewed')} renewed, ${count('not-due')} not due, ${count('skipped')} skipped, ${count('failed')} failed`,
          );
        }
        return results.some((r) => r.action === 'failed') ? 1 : 0;
      },
    ),
  },
  {
    command: 'revoke <name>',
    describe: 'revoke every unexpired certificate of a CN (a node: its agents too), rebuild the CRL bundle',
    builder: (y) =>
      y
        .positional('name', { type: 'string', describe: 'ct111, ct111.mesh, opus@ct111 or alice@external' })
        .option('reason', { type: 'string', describe: `CRL reason: ${REVOCATION_REASONS.join(', ')}` })
        .option('serial', { type: 'string', describe: "revoke only this serial (hex); a node's agents stay" })
        .option('node-only', {
          type: 'boolean',
          describe: 'revoke the node but keep its agents (e.g. cessationOfOperation of a replaced host)',
        })
        .option('push', PUSH_OPTION)
        .option('strict', STRICT_OPTION),
    handler: run(
      async (
        args: GlobalArgs & {
          name: string;
          reason?: string;
          serial?: string;
          nodeOnly?: boolean;
          push: boolean;
          strict?: boolean;
        },
      ) => {
        const { ca, config } = context(args);
        const pushOptions = args.push ? await pushSettings(config, ca) : undefined; // bad settings fail before anything changes
        const r = await revoke(ca, String(args.name), {
          reason: args.reason,
          serial: args.serial,
          nodeOnly: args.nodeOnly,
        });
        // The revocation is done; a node the push misses stays queued and is retried (DESIGN §5).
        const pushed = pushOptions ? await pushNow(ca, pushOptions) : undefined;
        if (args.json) {
          printJson({ ...r, push: pushed?.outcomes ?? 'skipped', ...(pushed ? { pullOnly: pushed.pullOnly } : {}) });
          if (args.strict && pushed) failIfOutstanding(pushed);
          return;
        }
        for (const s of r.revoked) print(`revoked ${r.cn} serial ${s.serial} (intermediate ${s.issuer})`);
        for (const a of r.agents)
          for (const s of a.revoked)
            print(`revoked ${a.cn} serial ${s.serial} (intermediate ${s.issuer}) — agent of ${r.cn}`);
        print(`crl.pem rebuilt: ${ca.store.crlBundle}`);
        if (!pushed) return print('push skipped (--no-push): nodes pick the CRL up at their next pull');
        reportPush(pushed, { strict: args.strict });
      },
    ),
  },
  {
    command: 'crl',
    describe: 'rebuild the CRLs and crl.pem (with --if-due: only when < 3 days remain)',
    builder: (y) =>
      y.option('if-due', { type: 'boolean', describe: 'only re-sign CRLs that are due' }).option('push', PUSH_OPTION),
    handler: run(async (args: GlobalArgs & { ifDue?: boolean; push: boolean }) => {
      const { ca, config } = context(args);
      const pushOptions = args.push ? await pushSettings(config, ca) : undefined;
      const r = await refreshCrls(ca, { force: !args.ifDue });
      const pushed = pushOptions && r.refreshed.length ? await pushNow(ca, pushOptions) : undefined;
      if (args.json) return printJson({ ...r, ...(pushed ? { push: pushed.outcomes } : {}) });
      print(
        r.refreshed.length
          ? `re-signed: ${r.refreshed.join(', ')} — ${ca.store.crlBundle}`
          : 'CRLs are fresh — nothing to do',
      );
      if (r.rootSkipped) print(`note: ${r.rootSkipped}`);
      if (pushed) reportPush(pushed);
    }),
  },
  {
    command: 'tidy',
    describe: 'archive expired entries so the live database stays small; expired serials leave the CRL',
    builder: (y) => y.option('push', PUSH_OPTION),
    handler: run(async (args: GlobalArgs & { push: boolean }) => {
      const { ca, config } = context(args);
      const pushOptions = args.push ? await pushSettings(config, ca) : undefined;
      const r = await tidy(ca);
      // Archiving re-signs the CRLs it shrank; retiring an intermediate changes the chain.
      const pushed = pushOptions && (r.archived || r.retired.length) ? await pushNow(ca, pushOptions) : undefined;
      if (args.json) return printJson({ ...r, ...(pushed ? { push: pushed.outcomes } : {}) });
      print(`tidy: archived ${r.archived} expired entr${r.archived === 1 ? 'y' : 'ies'}, ${r.kept} kept`);
      if (pushed) reportPush(pushed);
    }),
  },
];
