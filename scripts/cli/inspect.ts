// list, verify, status, doctor: looking without changing (DESIGN §4.5).
import type { CommandModule } from 'yargs';
import { context, print, printJson, run, type GlobalArgs } from './common.ts';
import { inventory } from '../../lib/ops/inventory.ts';
import { verifyCert } from '../../lib/ops/verify.ts';
import { doctor, rootFingerprint, type Finding } from '../../lib/ops/doctor.ts';
import { nodePushStatus } from '../../lib/ops/push-report.ts';
import { parseDuration } from '../../lib/core/duration.ts';
import { UsageError } from '../../lib/core/errors.ts';

function printFindings(findings: Finding[]): void {
  const mark = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' } as const;
  for (const f of findings) print(`${mark[f.level]}  ${f.what}${f.fix ? ` — ${f.fix}` : ''}`);
}

export const commands: CommandModule<GlobalArgs, any>[] = [
  {
    command: 'list',
    describe: 'every certificate in the database: CN, kind, serial, status, not-after, days left',
    builder: (y) =>
      y.option('expiring', { type: 'string', describe: 'only valid certificates expiring within this (e.g. 30d)' }),
    handler: run(async (args: GlobalArgs & { expiring?: string }) => {
      const within = args.expiring === undefined ? undefined : parseDuration(args.expiring, '--expiring');
      const { ca } = context(args);
      let rows = await inventory(ca);
      if (within !== undefined)
        rows = rows.filter((r) => r.status === 'valid' && new Date(r.notAfter).getTime() - Date.now() < within);
      if (args.json)
        return printJson(
          rows.map(({ cn, kind, serial, status, notBefore, notAfter, daysLeft, issuer }) => ({
            cn,
            kind,
            serial,
            status,
            notBefore,
            notAfter,
            daysLeft,
            issuer,
          })),
        );
      const w = Math.max(2, ...rows.map((r) => r.cn.length));
      print(
        `${'CN'.padEnd(w)}  ${'KIND'.padEnd(12)}  ${'STATUS'.padEnd(7)}  ${'NOT AFTER'.padEnd(10)}  ${'DAYS'.padStart(5)}  SERIAL`,
      );
      for (const r of rows)
        print(
          `${r.cn.padEnd(w)}  ${r.kind.padEnd(12)}  ${r.status.padEnd(7)}  ${r.notAfter.slice(0, 10)}  ${String(r.daysLeft).padStart(5)}  ${r.serial}`,
        );
    }),
  },
  {
    command: 'verify <cert>',
    describe: 'check a certificate: chain to the root, CRLs, profile rules',
    builder: (y) =>
      y
        .positional('cert', { type: 'string' })
        .option('server-name', { type: 'string', describe: 'also check it serves this name (TLS server purpose)' })
        .option('client', { type: 'boolean', describe: 'check it for the TLS client purpose' }),
    handler: run(async (args: GlobalArgs & { cert: string; serverName?: string; client?: boolean }) => {
      if (args.serverName !== undefined && args.client)
        throw new UsageError('give --server-name or --client, not both');
      const { ca } = context(args);
      const r = await verifyCert(ca, String(args.cert), { serverName: args.serverName, client: args.client });
      if (args.json) printJson({ ok: r.ok, cn: r.cn, serial: r.serial, problems: r.problems });
      else if (r.ok) print(`${args.cert}: OK (${r.cn}, serial ${r.serial})`);
      else {
        print(`${args.cert}: REFUSED (${r.cn ?? 'no CN'}, serial ${r.serial})`);
        for (const p of r.problems) print(`  - ${p}`);
      }
      return r.ok ? 0 : 1;
    }),
  },
  {
    command: 'status',
    describe: 'the CA at a glance: root fingerprint to hand to nodes, and what needs attention',
    handler: run(async (args: GlobalArgs) => {
      const { ca } = context(args, { report: true });
      const findings = await doctor(ca);
      const fingerprint = await rootFingerprint(ca).catch(() => undefined);
      if (args.json)
        printJson({ dir: ca.store.dir, fingerprint, findings, nodes: await nodePushStatus(ca).catch(() => []) });
      else {
        print(`CA directory   ${ca.store.dir}`);
        if (fingerprint) print(`root          ${fingerprint}`);
        printFindings(findings);
      }
      return findings.some((f) => f.level !== 'ok') ? 1 : 0;
    }),
  },
  {
    command: 'doctor',
    describe:
      'what would break soon (expiry, CRLs, key permissions, root key on disk); non-zero when anything needs action',
    handler: run(async (args: GlobalArgs) => {
      const { ca } = context(args, { report: true });
      const findings = await doctor(ca);
      if (args.json) printJson(findings);
      else printFindings(findings);
      return findings.some((f) => f.level !== 'ok') ? 1 : 0;
    }),
  },
];
