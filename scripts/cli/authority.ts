// init and issue-intermediate: the root and the intermediate it signs (DESIGN §4.1).
import type { CommandModule } from 'yargs';
import { context, print, printJson, readSecretFile, run, type GlobalArgs } from './common.ts';
import { initRoot, issueIntermediate } from '../../lib/ops/hierarchy.ts';
import { keyType } from '../../lib/core/keys.ts';
import { rootFingerprint } from '../../lib/ops/doctor.ts';
import { parsePkcs11Uri, pkcs11Module } from '../../lib/sign/pkcs11.ts';
import { UsageError } from '../../lib/core/errors.ts';
import { nameConstraintFlags, nameConstraintOptions, type NameConstraintArgs } from './name-constraints.ts';
import { describeNameConstraints, nameConstraintChoice } from '../../lib/policy/name-constraints.ts';
import { parseCertDer } from '../../lib/x509/cert.ts';

type InitArgs = GlobalArgs & { keyType?: string; passphraseFile?: string; pkcs11?: string; pkcs11Module?: string; pinFile?: string };

export const commands: CommandModule<GlobalArgs, any>[] = [
  {
    command: 'init',
    describe: 'create the root CA (once, ever)',
    builder: (y) => y
      .option('key-type', { type: 'string', describe: 'ec-p256 (default), ec-p384, rsa-3072, rsa-4096' })
      .option('passphrase-file', { type: 'string', describe: 'encrypt the root key with the passphrase in this file' })
      .option('pkcs11', { type: 'string', describe: 'sign with a key already in a PKCS#11 token, e.g. "pkcs11:token=rivet-root;object=root"' })
      .option('pkcs11-module', { type: 'string', describe: 'the token\'s PKCS#11 module (default: SoftHSM2, else p11-kit-proxy)' })
      .option('pin-file', { type: 'string', describe: 'file holding the token PIN (later commands: --root-passphrase-file)' }),
    handler: run(async (args: InitArgs) => {
      const type = keyType(args.keyType);
      const { ca } = context(args);
      if (args.pkcs11 === undefined && (args.pinFile || args.pkcs11Module)) throw new UsageError('--pin-file and --pkcs11-module go with --pkcs11 URI');
      if (args.pkcs11 !== undefined && args.passphraseFile) throw new UsageError('a PKCS#11 root key is not a file: give --pin-file, not --passphrase-file');
      const token = args.pkcs11 === undefined ? undefined : { uri: parsePkcs11Uri(String(args.pkcs11)), module: await pkcs11Module(args.pkcs11Module) };
      if (args.passphraseFile) ca.root = { passphrase: readSecretFile(args.passphraseFile, 'passphrase') };
      if (args.pinFile) ca.root = { passphrase: readSecretFile(args.pinFile, 'PIN') };
      const r = await initRoot(ca, { keyType: type, pkcs11: token });
      if (args.json) return printJson({ dir: ca.store.dir, fingerprint: `sha256:${r.fingerprint}`, notAfter: new Date(r.cert.validTo).toISOString() });
      print(`root CA created in ${ca.store.root().dir}`);
      print(`  subject      O=Rivet Collective, CN=Rivet Root CA (${token ? `key in PKCS#11 token ${token.uri}` : `${type}${args.passphraseFile ? ', key encrypted' : ''}`})`);
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
      if (args.json) return printJson({ serial: r.serial, notAfter: new Date(r.cert.validTo).toISOString(), fingerprint: await rootFingerprint(ca) });
      print(`intermediate "Rivet Intermediate CA 1" issued (serial ${r.serial}, until ${new Date(r.cert.validTo).toISOString().slice(0, 10)})`);
      print(`  names  ${describeNameConstraints(parseCertDer(Buffer.from(r.cert.raw)))}`);
      print(`  chain  ${ca.store.chainFile}`);
      print(`  crl    ${ca.store.crlBundle}`);
      print(`nodes pin the root with --ca-fingerprint ${await rootFingerprint(ca)}`);
    }),
  },
];
