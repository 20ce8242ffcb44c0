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
import { recordPushStatus } from '../../lib/ops/push-status.ts';

export const commands: CommandModule<GlobalArgs, any>[] = [
  {
    command: 'renew [names..]',
    describe: 'renew due certificates in issued/ (same key, new certificate; agents follow their node)',
    builder: (y) => y.positional('names', { type: 'string', array: true, describe: 'renew these now (default: everything due)' })
      .option('within', { type: 'string', default: '30d', describe: 'renew what expires within this (e.g. 30d)' })
      .option('days', { type: 'string', describe: 'validity of renewed certificates in days (default 90)' })
      .option('allow-shared-name', ALLOW_SHARED),
    handler: run(async (args: GlobalArgs & { names?: string[]; within: string; days?: string; allowSharedName?: boolean }) => {
      const withinMs = parseDuration(args.within, '--within');
      const days = parseDays(args.days);
      validityFrom({ days });
      const { ca } = context(args);
      const { config } = context(args);
      const results = await renewIssued(ca, { names: (args.names ?? []).map(String), withinMs, days, allowSharedName: args.allowSharedName });
      // The CA host's own node identity (rivet-ca host) renews with the CA it lives beside.
      if (!args.names?.length) {
        const { renewHostIfDue } = await import('../../lib/node/host.ts');
        try {
          const h = await renewHostIfDue(ca, config.nodeDir, withinMs);
          if (h) results.push({ cn: h.cn, action: h.action === 'unchanged' ? 'not-due' : 'renewed', serial: h.serial, notAfter: h.notAfter, why: `CA host node dir ${config.nodeDir}` } as (typeof results)[number]);
        } catch (err) {
          results.push({ cn: `CA host (${config.nodeDir})`, action: 'failed', why: (err as Error).message } as (typeof results)[number]);
        }
      }
      if (args.json) printJson(results);
      else {
        for (const r of results.filter((x) => x.action !== 'not-due')) {
          print(`${r.action.padEnd(8)} ${r.cn}${r.serial ? ` serial ${r.serial}` : ''}${r.notAfter ? ` until ${r.notAfter.toISOString().slice(0, 10)}` : ''}${r.why ? ` (${r.why})` : ''}`);
        }
        const count = (a: string) => results.filter((r) => r.action === a).length;
        print(`renew: ${count('renewed')} renewed, ${count('not-due')} not due, ${count('skipped')} skipped, ${count('failed')} failed`);
      }
      return results.some((r) => r.action === 'failed') ? 1 : 0;
    }),
  },
  {
    command: 'revoke <name>',
    describe: 'revoke every unexpired certificate of a CN (a node: its agents too), rebuild the CRL bundle',
    builder: (y) => y.positional('name', { type: 'string', describe: 'ct111, ct111.mesh, opus@ct111 or alice@external' })
      .option('reason', { type: 'string', describe: `CRL reason: ${REVOCATION_REASONS.join(', ')}` })
      .option('serial', { type: 'string', describe: 'revoke only this serial (hex); a node\'s agents stay' })
      .option('node-only', { type: 'boolean', describe: 'revoke the node but keep its agents (e.g. cessationOfOperation of a replaced host)' })
      .option('push', { type: 'boolean', default: true, describe: 'push crl.pem to every node (RIVET_CRL_PUSH_URL); --no-push to skip' }),
    handler: run(async (args: GlobalArgs & { name: string; reason?: string; serial?: string; nodeOnly?: boolean; push: boolean }) => {
      // Loaded here, not at the top: the push brings https and tls, which every other command
      // would otherwise load at start-up (scripts/launch.mjs).
      const { pushCrl, pushOptionsFrom } = await import('../../lib/distribute/push.ts');
      const { ca, config } = context(args);
      const pushOptions = args.push ? pushOptionsFrom(config, ca.domain) : undefined; // bad settings fail before anything changes
      const r = await revoke(ca, String(args.name), { reason: args.reason, serial: args.serial, nodeOnly: args.nodeOnly });
      // The revocation is done; a failed push only delays nodes until their next pull (DESIGN §5).
      const pushed = pushOptions ? await pushCrl(ca, pushOptions) : undefined;
      if (pushed) await recordPushStatus(ca, pushed); // for serve's /metrics
      if (args.json) return printJson({ ...r, push: pushed ?? 'skipped' });
      for (const s of r.revoked) print(`revoked ${r.cn} serial ${s.serial} (intermediate ${s.issuer})`);
      for (const a of r.agents) for (const s of a.revoked) print(`revoked ${a.cn} serial ${s.serial} (intermediate ${s.issuer}) — agent of ${r.cn}`);
      print(`crl.pem rebuilt: ${ca.store.crlBundle}`);
      if (!pushed) return print('push skipped (--no-push): nodes pick the CRL up at their next pull');
      if (pushed.length === 0) return print('push: no node holds a valid node certificate — nothing to push to');
      for (const p of pushed) print(`push ${p.ok ? 'ok    ' : 'FAILED'} ${p.node} ${p.ms} ms — ${p.message}`);
      const failed = pushed.filter((p) => !p.ok).length;
      print(`push: ${pushed.length - failed}/${pushed.length} nodes updated${failed ? '; the others catch up by pull (provision-ct fetch-crl)' : ''}`);
    }),
  },
  {
    command: 'crl',
    describe: 'rebuild the CRLs and crl.pem (with --if-due: only when < 3 days remain)',
    builder: (y) => y.option('if-due', { type: 'boolean', describe: 'only re-sign CRLs that are due' }),
    handler: run(async (args: GlobalArgs & { ifDue?: boolean }) => {
      const { ca } = context(args);
      const r = await refreshCrls(ca, { force: !args.ifDue });
      if (args.json) return printJson(r);
      print(r.refreshed.length ? `re-signed: ${r.refreshed.join(', ')} — ${ca.store.crlBundle}` : 'CRLs are fresh — nothing to do');
      if (r.rootSkipped) print(`note: ${r.rootSkipped}`);
    }),
  },
  {
    command: 'tidy',
    describe: 'archive expired entries so the live database stays small; expired serials leave the CRL',
    handler: run(async (args: GlobalArgs) => {
      const { ca } = context(args);
      const r = await tidy(ca);
      if (args.json) return printJson(r);
      print(`tidy: archived ${r.archived} expired entr${r.archived === 1 ? 'y' : 'ies'}, ${r.kept} kept`);
    }),
  },
];
