// init and issue-intermediate: the root and the intermediate it signs (DESIGN §4.1).
import type { CommandModule } from 'yargs';
import { context, print, printJson, readSecretFile, run, type GlobalArgs } from './common.ts';
import { initRoot, issueIntermediate } from '../../lib/authority.ts';
import { keyType } from '../../lib/keys.ts';
import { rootFingerprint } from '../../lib/doctor.ts';

type InitArgs = GlobalArgs & { keyType?: string; passphraseFile?: string };

export const commands: CommandModule<GlobalArgs, any>[] = [
  {
    command: 'init',
    describe: 'create the root CA (once, ever)',
    builder: (y) => y
      .option('key-type', { type: 'string', describe: 'ec-p256 (default), ec-p384, rsa-3072, rsa-4096' })
      .option('passphrase-file', { type: 'string', describe: 'encrypt the root key with the passphrase in this file' }),
    handler: run(async (args: InitArgs) => {
      const type = keyType(args.keyType);
      const { ca } = context(args);
      if (args.passphraseFile) ca.root = { passphrase: readSecretFile(args.passphraseFile, 'passphrase') };
      const r = await initRoot(ca, { keyType: type });
      if (args.json) return printJson({ dir: ca.store.dir, fingerprint: `sha256:${r.fingerprint}`, notAfter: new Date(r.cert.validTo).toISOString() });
      print(`root CA created in ${ca.store.root().dir}`);
      print(`  subject      O=Rivet Collective, CN=Rivet Root CA (${type}${args.passphraseFile ? ', key encrypted' : ''})`);
      print(`  valid until  ${new Date(r.cert.validTo).toISOString().slice(0, 10)}`);
      print(`  fingerprint  sha256:${r.fingerprint}`);
      print('next: rivet-ca issue-intermediate');
    }),
  },
  {
    command: 'issue-intermediate',
    describe: 'sign the first intermediate with the root; write chain.pem and the first CRLs',
    handler: run(async (args: GlobalArgs) => {
      const { ca } = context(args);
      const r = await issueIntermediate(ca);
      if (args.json) return printJson({ serial: r.serial, notAfter: new Date(r.cert.validTo).toISOString(), fingerprint: await rootFingerprint(ca) });
      print(`intermediate "Rivet Intermediate CA 1" issued (serial ${r.serial}, until ${new Date(r.cert.validTo).toISOString().slice(0, 10)})`);
      print(`  chain  ${ca.store.chainFile}`);
      print(`  crl    ${ca.store.crlBundle}`);
      print(`nodes pin the root with --ca-fingerprint ${await rootFingerprint(ca)}`);
    }),
  },
];
