#!/usr/bin/env -S sh -c 'exec "$(dirname "$(readlink -f "$0")")/../node_modules/.bin/tsx" "$0" "$@"'
// `make demo`: the whole CA lifecycle in a throw-away directory, printing each command and its
// real output — init, intermediate, a node and an agent, list, revoke, and verify refusing the
// revoked agent. Needs only Node 20 and openssl; leaves nothing running.
import { $, chalk, fs, os, path } from 'zx';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, 'rivet-ca.mts');
const caDir = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'rivet-demo-')), 'ca');
$.verbose = false;
$.env = { ...process.env, RIVET_CA_DIR: caDir, RIVET_ENV_FILE: '/dev/null' };

let step = 0;
async function show(title: string, args: string[], expectFail = false): Promise<string> {
  step++;
  console.log(chalk.bold(`\n${step}. ${title}`));
  console.log(chalk.cyan(`$ rivet-ca ${args.join(' ')}`));
  const r = await $`${cli} ${args}`.nothrow();
  const out = `${r.stdout}${r.stderr}`.trimEnd();
  if (out) console.log(out);
  if (expectFail ? r.exitCode === 0 : r.exitCode !== 0) {
    console.error(chalk.red(`demo: step ${step} ${expectFail ? 'should have failed' : `failed (exit ${r.exitCode})`}`));
    process.exit(1);
  }
  return r.stdout;
}

console.log(chalk.bold(`rivet-ca demo — CA directory ${caDir}`));
await show('Create the root (once, ever)', ['init']);
await show('Sign the intermediate that issues day to day', ['issue-intermediate']);
await show('Issue the node certificate for ct111', ['issue-node', 'ct111', '--san', 'IP:10.0.0.111']);
await show('Issue client certificates for two agents on ct111', ['issue-agent', 'opus@ct111']);
await show('', ['issue-agent', 'grok@ct111']);
await show('Inventory', ['list']);
const opus = path.join(caDir, 'issued', 'opus@ct111.crt');
await show('Verify the agent as a TLS client: chain, CRL, profile', ['verify', opus, '--client']);
await show('Cut opus off across the mesh', ['revoke', 'opus@ct111', '--reason', 'keyCompromise']);
await show('The same check now refuses it', ['verify', opus, '--client'], true);
await show('…while grok still verifies', ['verify', path.join(caDir, 'issued', 'grok@ct111.crt'), '--client']);
await show('Inventory after the revocation', ['list']);
await fs.remove(path.dirname(caDir));
console.log(chalk.green('\ndemo complete: the revoked agent was refused, the others still verify.'));
