// init, issue-intermediate and host: the root, the intermediate it signs (DESIGN §4.1), and the
// CA host's own node identity (DESIGN §6).
import type { CommandModule } from 'yargs';
import { context, print, printJson, readSecretFile, run, type GlobalArgs } from './common.ts';
import { initRoot, issueIntermediate } from '../../lib/ops/hierarchy.ts';
import { keyType } from '../../lib/core/keys.ts';
import { rootFingerprint } from '../../lib/ops/doctor.ts';
import { parsePkcs11Uri, pkcs11Module } from '../../lib/sign/pkcs11.ts';
import { UsageError } from '../../lib/core/errors.ts';
import { parseIdentityOf } from '../../lib/core/identity.ts';
import { parseSan } from '../../lib/core/san.ts';
import { parseDuration } from '../../lib/core/duration.ts';
import { installHost } from '../../lib/node/host.ts';
import { nameConstraintFlags, nameConstraintOptions, type NameConstraintArgs } from './name-constraints.ts';
import { describeNameConstraints, nameConstraintChoice } from '../../lib/policy/name-constraints.ts';
import { parseCertDer } from '../../lib/x509/cert.ts';

type InitArgs = GlobalArgs & {
  keyType?: string;
  passphraseFile?: string;
  pkcs11?: string;
  pkcs11Module?: string;
  pinFile?: string;
};

export const commands: CommandModule<GlobalArgs, any>[] = [
  {
    command: 'init',
    describe: 'create the root CA (once, ever)',
    builder: (y) =>
      y
        .option('key-type', { type: 'string', describe: 'ec-p256 (default), ec-p384, rsa-3072, rsa-4096' })
        .option('passphrase-file', {
          type: 'string',
          describe: 'encrypt the root key with the passphrase in this file',
        })
        .option('pkcs11', {
          type: 'string',
          describe: 'sign with a key already in a PKCS#11 token, e.g. "pkcs11:token=rivet-root;object=root"',
        })
        .option('pkcs11-module', {
          type: 'string',
          describe: "the token's PKCS#11 module (default: SoftHSM2, else p11-kit-proxy)",
        })
        .option('pin-file', {
          type: 'string',
          describe: 'file holding the token PIN (later commands: --root-passphrase-file)',
        }),
    handler: run(async (args: InitArgs) => {
      const type = keyType(args.keyType);
      const { ca } = context(args);
      if (args.pkcs11 === undefined && (args.pinFile || args.pkcs11Module))
        throw new UsageError('--pin-file and --pkcs11-module go with --pkcs11 URI');
      if (args.pkcs11 !== undefined && args.passphraseFile)
        throw new UsageError('a PKCS#11 root key is not a file: give --pin-file, not --passphrase-file');
      const token =
        args.pkcs11 === undefined
          ? undefined
          : { uri: parsePkcs11Uri(String(args.pkcs11)), module: await pkcs11Module(args.pkcs11Module) };
      if (args.passphraseFile) ca.root = { passphrase: readSecretFile(args.passphraseFile, 'passphrase') };
      if (args.pinFile) ca.root = { passphrase: readSecretFile(args.pinFile, 'PIN') };
      const r = await initRoot(ca, { keyType: type, pkcs11: token });
      if (args.json)
        return printJson({
          dir: ca.store.dir,
          fingerprint: `sha256:${r.fingerprint}`,
          notAfter: new Date(r.cert.validTo).toISOString(),
        });
      print(`root CA created in ${ca.store.root().dir}`);
      print(
        `  subject      O=Rivet Collective, CN=Rivet Root CA (${token ? `key in PKCS#11 token ${token.uri}` : `${type}${args.passphraseFile ? ', key encrypted' : ''}`})`,
      );
      print(`  valid until  ${new Date(r.cert.validTo).toISOString().slice(0, 10)}`);
      print(`  fingerprint  sha256:${r.fingerprint}`);
      print('next: rivet-ca issue-intermediate');
    }),
  },
  {
    command: 'issue-intermediate',
    describe: 'sign the first intermediate with the root; write chain.pem and the first CRLs',
    builder: (y) => nameConstraintOptions(y, 'on'),
    handler: run(async (args: GlobalArgs & NameConstraintArgs) => {
      const { ca, config } = context(args);
      const names = nameConstraintChoice(nameConstraintFlags(args));
      const r = await issueIntermediate(ca, { names, sanCidrs: config.sanCidrs });
      if (args.json)
        return printJson({
          serial: r.serial,
          notAfter: new Date(r.cert.validTo).toISOString(),
          fingerprint: await rootFingerprint(ca),
        });
      print(
        `intermediate "Rivet Intermediate CA 1" issued (serial ${r.serial}, until ${new Date(r.cert.validTo).toISOString().slice(0, 10)})`,
      );
      print(`  names  ${describeNameConstraints(parseCertDer(Buffer.from(r.cert.raw)))}`);
      print(`  chain  ${ca.store.chainFile}`);
      print(`  crl    ${ca.store.crlBundle}`);
      print(`nodes pin the root with --ca-fingerprint ${await rootFingerprint(ca)}`);
    }),
  },
  {
    command: 'host <node-id>',
    describe:
      'make this CA host a node of its mesh: key, node.crt, rivet-ca.crt, crl.pem and node.json in RIVET_NODE_DIR (what serve presents and push authenticates with)',
    builder: (y) =>
      y
        .positional('node-id', { type: 'string', describe: "this host's node-id, e.g. ct110" })
        .option('san', { type: 'string', array: true, describe: 'extra SAN, DNS:<name> or IP:<address> (repeatable)' })
        .option('within', {
          type: 'string',
          default: '30d',
          describe: 're-issue when the installed cert expires within this',
        })
        .option('force', { type: 'boolean', describe: 're-issue now (same key)' }),
    handler: run(async (args: GlobalArgs & { nodeId: string; san?: string[]; within: string; force?: boolean }) => {
      const withinMs = parseDuration(args.within, '--within');
      const { config, ca } = context(args);
      const id = parseIdentityOf('node', String(args.nodeId), ca.domain);
      if (id.kind !== 'node') return 2;
      const sans = (args.san ?? []).map(String).map(parseSan);
      const r = await installHost(ca, {
        nodeDir: config.nodeDir,
        nodeId: id.nodeId,
        sans,
        withinMs,
        force: args.force,
      });
      if (args.json) return printJson({ ...r, nodeDir: config.nodeDir });
      print(
        `${r.action === 'unchanged' ? 'unchanged' : r.action} ${r.cn}: serial ${r.serial}, until ${r.notAfter.toISOString().slice(0, 10)} in ${config.nodeDir}${r.changed.length ? ` (wrote ${r.changed.join(', ')})` : ''}`,
      );
      if (r.action === 'issued')
        print(
          `next: rivet-ca serve (presents ${r.cn}; nodes enroll with --datahub https://${r.cn}:8443 --ca-fingerprint ${await rootFingerprint(ca)})`,
        );
    }),
  },
];
