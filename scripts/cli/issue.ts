// Issuance commands (DESIGN §4.2): operator-made keys, external CSRs, PKCS#12, rosters.
import fs from 'node:fs';
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { context, print, printJson, run, secretFrom, type GlobalArgs } from './common.ts';
import { issueWithNewKey, signCsrFor, type OperatorResult } from '../../lib/ops/operator-issue.ts';
import { leafValidity } from '../../lib/sign/validity.ts';
import { parseIdentityOf, parseIdentity, fileStem, type IdentityKind } from '../../lib/core/identity.ts';
import { parseSan } from '../../lib/core/san.ts';
import { keyType } from '../../lib/core/keys.ts';
import { exportP12 } from '../../lib/ops/p12.ts';
import { issueRoster, parseRoster } from '../../lib/ops/roster.ts';
import { UsageError, show } from '../../lib/core/errors.ts';
import { MAX_CSR_BYTES } from '../../lib/sign/csr.ts';

type ValidityArgs = { days?: number | string; notBefore?: string };
type IssueArgs = GlobalArgs &
  ValidityArgs &
  SharedArgs & {
    name: string;
    san?: string[];
    keyType?: string;
    ifMissing?: boolean;
    force?: boolean;
    p12?: string;
    passphraseFile?: string;
  };
type SharedArgs = { allowSharedName?: boolean };

/** The operator's explicit, audited override of name ownership (DESIGN §3); the service has none. */
export const ALLOW_SHARED = {
  type: 'boolean',
  describe: 'let this node carry a DNS name or IP another live node holds (audited; renewals need it again)',
} as const;

function validityOptions<T>(y: Argv<T>) {
  return y
    .option('days', { type: 'string', describe: 'validity in days (default 90)' })
    .option('not-before', { type: 'string', describe: 'start of validity, ISO 8601 (default: now)' });
}

export function validityFrom(args: ValidityArgs) {
  return leafValidity({
    days: parseDays(args.days),
    notBefore: args.notBefore === undefined ? undefined : parseTime(args.notBefore),
  });
}

/** yargs leaves numbers as text (parse-numbers is off so identities stay text). */
export function parseDays(days: number | string | undefined): number | undefined {
  if (days === undefined) return undefined;
  if (!/^\d{1,4}$/.test(String(days)))
    throw new UsageError(`--days ${String(days)} must be a whole number from 1 to 825`);
  return Number(days);
}

function parseTime(text: string): Date {
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?(\.\d+)?(Z|[+-]\d{2}:\d{2}))?$/.test(text))
    throw new UsageError(`--not-before ${show(text)} must be ISO 8601, like 2026-01-31T00:00:00Z`);
  return new Date(text);
}

function describeResult(r: OperatorResult, json: boolean | undefined): void {
  if ('skipped' in r) {
    if (json)
      return printJson({
        cn: r.cn,
        serial: r.serial,
        cert: r.certPath,
        notAfter: r.notAfter.toISOString(),
        skipped: true,
      });
    return print(
      `${r.cn}: valid certificate present (serial ${r.serial}, until ${r.notAfter.toISOString().slice(0, 10)}) — nothing to do`,
    );
  }
  if (json)
    return printJson({
      cn: r.cn,
      serial: r.serial,
      cert: r.certPath,
      key: r.keyPath,
      notAfter: r.info.notAfter.toISOString(),
      sans: [
        ...r.info.dns.map((d) => `DNS:${d}`),
        ...r.info.ips.map((i) => `IP:${i}`),
        ...r.info.uris.map((u) => `URI:${u}`),
      ],
    });
  print(`issued ${r.cn} (serial ${r.serial}, until ${r.info.notAfter.toISOString().slice(0, 10)})`);
  print(`  cert  ${r.certPath}`);
  print(`  key   ${r.keyPath}`);
}

function issueCommand(kind: IdentityKind, command: string, describe: string): CommandModule<GlobalArgs, any> {
  return {
    command: `${command} <name>`,
    describe,
    builder: (y) =>
      validityOptions(y)
        .positional('name', { type: 'string' })
        .option('san', {
          type: 'string',
          array: true,
          describe: 'extra SAN, DNS:<name> or IP:<address> (repeatable; nodes only)',
        })
        .option('key-type', { type: 'string', describe: 'ec-p256 (default), ec-p384, rsa-3072, rsa-4096' })
        .option('if-missing', { type: 'boolean', describe: 'do nothing while a valid certificate exists' })
        .option('force', { type: 'boolean', describe: 'replace a valid certificate (new key)' })
        .option('allow-shared-name', { ...ALLOW_SHARED, hidden: kind !== 'node' })
        .option('p12', {
          type: 'string',
          describe: kind === 'user' ? 'also write a PKCS#12 file here' : undefined,
          hidden: kind !== 'user',
        })
        .option('passphrase-file', {
          type: 'string',
          describe: kind === 'user' ? 'PKCS#12 passphrase file (else prompted)' : undefined,
          hidden: kind !== 'user',
        }),
    handler: run(async (args: IssueArgs) => {
      const { ca } = context(args);
      const id = parseIdentityOf(kind, String(args.name), ca.domain);
      const sans = (args.san ?? []).map(String).map(parseSan);
      const type = keyType(args.keyType);
      const validity = validityFrom(args);
      if (args.p12 !== undefined && kind !== 'user')
        throw new UsageError('--p12 is for issue-user; use export-p12 for other identities');
      const pass =
        args.p12 !== undefined
          ? await secretFrom(args.passphraseFile, 'PKCS#12 passphrase: ', 'passphrase')
          : undefined;
      const r = await issueWithNewKey(ca, id, {
        sans,
        keyType: type,
        validity,
        ifMissing: args.ifMissing,
        force: args.force,
        allowSharedName: args.allowSharedName,
      });
      describeResult(r, args.json);
      if (args.p12 !== undefined && pass !== undefined) {
        const out = await exportP12(ca, fileStem(id), pass, path.resolve(args.p12));
        if (!args.json) print(`  p12   ${out}`);
      }
    }),
  };
}

export const commands: CommandModule<GlobalArgs, any>[] = [
  issueCommand('node', 'issue-node', 'issue a node certificate (server + client), key made here'),
  issueCommand('agent', 'issue-agent', 'issue an agent client certificate <agent-id>@<node-id>'),
  issueCommand('user', 'issue-user', 'issue an external user certificate <user>@external'),
  {
    command: 'sign <csr>',
    describe: 'sign a CSR made elsewhere; only its public key is used',
    builder: (y) =>
      validityOptions(y)
        .positional('csr', { type: 'string' })
        .option('as', {
          type: 'string',
          demandOption: true,
          describe: 'identity to certify: <node-id>, <agent-id>@<node-id>, <user>@external',
        })
        .option('san', { type: 'string', array: true, describe: 'extra SAN for a node' })
        .option('out', { type: 'string', describe: 'write the certificate here (default issued/<identity>.crt)' })
        .option('allow-shared-name', ALLOW_SHARED),
    handler: run(
      async (
        args: GlobalArgs & ValidityArgs & SharedArgs & { csr: string; as: string; san?: string[]; out?: string },
      ) => {
        const { ca } = context(args);
        const id = parseIdentity(String(args.as), ca.domain);
        const sans = (args.san ?? []).map(String).map(parseSan);
        const validity = validityFrom(args);
        const file = String(args.csr);
        let stat: fs.Stats;
        try {
          stat = fs.statSync(file);
        } catch {
          throw new UsageError(`cannot read CSR file ${show(file)}`);
        }
        // A directory failed as an internal error and /dev/zero (size 0) was read forever.
        if (!stat.isFile()) throw new UsageError(`CSR file ${show(file)} is not a regular file — give a PEM file`);
        if (stat.size > MAX_CSR_BYTES)
          throw new UsageError(`CSR file ${show(file)} is ${stat.size} bytes — at most ${MAX_CSR_BYTES}`);
        const out = path.resolve(args.out ?? ca.store.issued(fileStem(id), 'crt'));
        if (!args.out && fs.existsSync(ca.store.issued(fileStem(id), 'key'))) {
          throw new UsageError(
            `issued/${fileStem(id)}.key belongs to a certificate this CA host made — give --out FILE so that pair is not split`,
          );
        }
        const r = await signCsrFor(ca, id, fs.readFileSync(file, 'utf8'), sans, validity, out, {
          allowSharedName: args.allowSharedName,
        });
        if (args.json)
          return printJson({ cn: r.cn, serial: r.serial, cert: out, notAfter: r.info.notAfter.toISOString() });
        print(`signed ${r.cn} (serial ${r.serial}, until ${r.info.notAfter.toISOString().slice(0, 10)})`);
        print(`  cert  ${out}`);
      },
    ),
  },
  {
    command: 'export-p12 <name>',
    describe: 'bundle an issued key and certificate as PKCS#12 (browsers, Claude Desktop, Cursor)',
    builder: (y) =>
      y
        .positional('name', { type: 'string' })
        .option('out', { type: 'string', describe: 'output file (default issued/<name>.p12)' })
        .option('passphrase-file', {
          type: 'string',
          describe: 'file holding the passphrase (else prompted; never argv)',
        }),
    handler: run(async (args: GlobalArgs & { name: string; out?: string; passphraseFile?: string }) => {
      const { ca } = context(args);
      parseIdentity(String(args.name), ca.domain);
      const pass = await secretFrom(args.passphraseFile, 'PKCS#12 passphrase: ', 'passphrase');
      const out = await exportP12(ca, String(args.name), pass, args.out ? path.resolve(args.out) : undefined);
      print(`wrote ${out} (mode 0600)`);
    }),
  },
  {
    command: 'issue',
    describe: 'issue many identities from a roster file (one per line, optional SANs)',
    builder: (y) =>
      validityOptions(y)
        .option('roster', {
          type: 'string',
          demandOption: true,
          describe: 'file: `ct111 DNS:ct111.lan`, `opus@ct111`, … one per line',
        })
        .option('if-missing', { type: 'boolean', describe: 'skip identities that already hold a valid certificate' })
        .option('force', { type: 'boolean', describe: 'replace valid certificates' })
        .option('allow-shared-name', ALLOW_SHARED),
    handler: run(
      async (
        args: GlobalArgs & ValidityArgs & SharedArgs & { roster: string; ifMissing?: boolean; force?: boolean },
      ) => {
        const { ca } = context(args);
        let text: string;
        try {
          text = fs.readFileSync(String(args.roster), 'utf8');
        } catch {
          throw new UsageError(`cannot read roster ${show(args.roster)}`);
        }
        const entries = parseRoster(text, ca, { allowSharedName: args.allowSharedName });
        const validity = validityFrom(args);
        const tty = process.stderr.isTTY;
        const outcomes = await issueRoster(ca, entries, {
          ifMissing: args.ifMissing,
          force: args.force,
          allowSharedName: args.allowSharedName,
          validity,
          onProgress: (done, total, o) => {
            if (o.error)
              process.stderr.write(`${tty ? '\r' : ''}line ${o.entry.line}: ${fileStem(o.entry.id)}: ${o.error}\n`);
            if (tty) process.stderr.write(`\rissued ${done}/${total}`);
            else if (done === total || done % 50 === 0) process.stderr.write(`issued ${done}/${total}\n`);
          },
        });
        if (tty) process.stderr.write('\n');
        const failed = outcomes.filter((o) => o.error);
        const skipped = outcomes.filter((o) => o.result && 'skipped' in o.result);
        if (args.json)
          printJson(
            outcomes.map((o) => ({
              identity: fileStem(o.entry.id),
              line: o.entry.line,
              ...(o.error ? { error: o.error } : { serial: o.result!.serial, skipped: 'skipped' in o.result! }),
            })),
          );
        else
          print(
            `roster: ${outcomes.length - failed.length - skipped.length} issued, ${skipped.length} already valid, ${failed.length} failed`,
          );
        return failed.length ? 1 : 0;
      },
    ),
  },
];
