// Root ceremonies and intermediate rotation (DESIGN §4.1, §4.6): root offline|online|crl and
// rotate-intermediate. The work is in lib/ops/ceremony.ts and lib/ops/rotate.ts.
import type { CommandModule } from 'yargs';
import { context, print, printJson, run, type GlobalArgs } from './common.ts';
import { nameConstraintFlags, nameConstraintOptions, type NameConstraintArgs } from './name-constraints.ts';
import { ROOT_CRL_SERIES_YEARS } from '../../lib/sign/root-crl-series.ts';
import { rootCrl, rootOffline, rootOnline } from '../../lib/ops/ceremony.ts';
import { rotateIntermediate } from '../../lib/ops/rotate.ts';
import { keyType } from '../../lib/core/keys.ts';
import { UsageError, show } from '../../lib/core/errors.ts';
import { PUSH_OPTION, pushNow, pushSettings, reportPush } from './push.ts';

const rootCommands: CommandModule<GlobalArgs, any>[] = [
  {
    command: 'offline',
    describe: 'move the root key to DIR (copy, verify against ca.crt, then remove it from this host)',
    builder: (y) => y.option('to', { type: 'string', demandOption: true, describe: 'directory on removable media' }),
    handler: run(async (args: GlobalArgs & { to: string }) => {
      const { ca } = context(args);
      const r = await rootOffline(ca, String(args.to));
      if (args.json) return printJson(r);
      print(`root key moved to ${r.key} (verified against the root certificate; copy of ca.crt beside it)`);
      print(
        `${ca.store.root().key} removed — bring it back for a ceremony with \`rivet-ca root online --from ${args.to}\``,
      );
    }),
  },
  {
    command: 'online',
    describe: 'bring the root key back from DIR for a ceremony (verified against ca.crt, installed 0600)',
    builder: (y) =>
      y.option('from', {
        type: 'string',
        demandOption: true,
        describe: 'directory `root offline` wrote to (or the key file)',
      }),
    handler: run(async (args: GlobalArgs & { from: string }) => {
      const { ca } = context(args);
      const r = await rootOnline(ca, String(args.from));
      if (args.json) return printJson(r);
      print(
        r.already
          ? `root key already online at ${r.key}`
          : `root key online at ${r.key} — take it offline again when done: \`rivet-ca root offline --to DIR\``,
      );
    }),
  },
  {
    command: 'crl',
    describe:
      're-sign the root CRLs (needs the root online): a series of overlapping 365-day windows for the next years, or with --days one CRL; rebuild crl.pem',
    builder: (y) =>
      y
        .option('years', {
          type: 'number',
          describe: `how far ahead the series reaches (default ${ROOT_CRL_SERIES_YEARS})`,
        })
        .option('days', { type: 'number', describe: 'sign one root CRL valid this many days instead of a series' })
        .option('push', PUSH_OPTION),
    handler: run(async (args: GlobalArgs & { days?: number; years?: number; push: boolean }) => {
      for (const [flag, v] of [
        ['--days', args.days],
        ['--years', args.years],
      ] as const) {
        if (v !== undefined && !Number.isInteger(v)) throw new UsageError(`${flag} ${show(v)} must be a whole number`);
      }
      const { ca, config } = context(args);
      const pushOptions = args.push ? await pushSettings(config, ca) : undefined;
      const s = await rootCrl(ca, { days: args.days, years: args.years });
      const pushed = pushOptions ? await pushNow(ca, pushOptions) : undefined;
      if (args.json)
        return printJson({
          crl: ca.store.root().crl,
          nextUpdate: s.current.nextUpdate?.toISOString(),
          crlNumber: s.current.crlNumber?.toString(),
          windows: s.windows,
          seriesEnd: s.end.toISOString(),
          ...(pushed ? { push: pushed.outcomes } : {}),
        });
      print(
        `root CRL re-signed, valid until ${s.current.nextUpdate!.toISOString().slice(0, 10)} (crlNumber ${s.current.crlNumber})`,
      );
      if (s.windows > 1)
        print(
          `  series  ${s.windows} overlapping windows until ${s.end.toISOString().slice(0, 10)} — \`make renew\` and serve publish each as it starts`,
        );
      print(`  crl     ${ca.store.crlBundle}`);
      if (pushed) reportPush(pushed);
    }),
  },
];

export const commands: CommandModule<GlobalArgs, any>[] = [
  {
    command: 'root <command>',
    describe: 'root ceremonies: offline, online, crl',
    builder: (y) => y.command(rootCommands).demandCommand(1, 'give a root command: offline, online or crl'),
    handler: () => {},
  },
  {
    command: 'rotate-intermediate',
    describe:
      'make a new intermediate that issues from now on; the old one stays in chain and CRLs until its leaves expire',
    builder: (y) =>
      nameConstraintOptions(
        y.option('key-type', { type: 'string', describe: 'ec-p256 (default), ec-p384, rsa-3072, rsa-4096' }),
        "the current intermediate's choice",
      ).option('push', PUSH_OPTION),
    handler: run(async (args: GlobalArgs & NameConstraintArgs & { keyType?: string; push: boolean }) => {
      const type = keyType(args.keyType);
      const { ca, config } = context(args);
      const pushOptions = args.push ? await pushSettings(config, ca) : undefined;
      const r = await rotateIntermediate(ca, {
        keyType: type,
        names: nameConstraintFlags(args),
        sanCidrs: config.sanCidrs,
      });
      // Nodes need the new chain before any new-intermediate certificate verifies there.
      const pushed = pushOptions ? await pushNow(ca, pushOptions) : undefined;
      if (args.json)
        return printJson({
          generation: r.generation,
          previous: r.previous,
          serial: r.serial,
          notAfter: new Date(r.cert.validTo).toISOString(),
          ...(pushed ? { push: pushed.outcomes } : {}),
        });
      print(
        `intermediate "Rivet Intermediate CA ${r.generation}" issues from now on (serial ${r.serial}, until ${new Date(r.cert.validTo).toISOString().slice(0, 10)})`,
      );
      print(
        `  intermediate ${r.previous} keeps its CRL until its last leaf expires (then \`rivet-ca tidy\` retires it)`,
      );
      print(`  chain  ${ca.store.chainFile}`);
      print(`  crl    ${ca.store.crlBundle}`);
      if (pushed) reportPush(pushed);
      else
        print('push skipped (--no-push): `rivet-ca push` when ready; nodes also pick the chain up at their next pull');
    }),
  },
];
