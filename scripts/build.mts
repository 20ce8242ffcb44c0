// `make build` / `npm run build`: bundles each CLI tool into dist/<tool>.mjs with esbuild (which
// tsx already brings), plus dist/<tool>.inputs.json, the list of every file the bundle was made
// from. scripts/launch.mjs runs the bundle only while all of them are unchanged; otherwise the
// tool runs from source through tsx. dist/ is git-ignored and never needs to be up to date.
// `--best-effort`: a tool that does not bundle (someone's work in progress) keeps using tsx.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const bestEffort = process.argv.includes('--best-effort');
const TOOLS = ['rivet-ca', 'provision-ct'];

function record(rel: string) {
  const file = path.join(root, rel);
  const st = fs.statSync(file);
  return { path: rel, size: st.size, mtimeMs: st.mtimeMs, sha256: createHash('sha256').update(fs.readFileSync(file)).digest('hex') };
}

async function bundle(tool: string): Promise<boolean> {
  const entry = path.join(root, 'scripts', `${tool}.mts`);
  const outfile = path.join(dist, `${tool}.mjs`);
  const manifest = path.join(dist, `${tool}.inputs.json`);
  fs.rmSync(manifest, { force: true }); // stale-proof even if this build dies half-way
  if (!fs.existsSync(entry)) return true;
  try {
    const result = await build({
      entryPoints: [entry], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20',
      absWorkingDir: root, minifyWhitespace: true, minifySyntax: true, metafile: true, logLevel: 'silent', legalComments: 'none',
      // CommonJS dependencies (dotenv, yargs' helpers) call require(): give the ESM bundle one.
      banner: { js: "import { createRequire as __rivetRequire } from 'node:module'; const require = __rivetRequire(import.meta.url);" },
    });
    // Node and esbuild need the same view of the sources: the launcher checks all of these, plus
    // this script and the lockfile (a dependency change that esbuild would resolve differently).
    const inputs = [...Object.keys(result.metafile!.inputs), 'scripts/build.mts', 'package-lock.json']
      .filter((p, i, all) => all.indexOf(p) === i && !p.startsWith('<'))
      .map(record);
    const tmp = `${manifest}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ bundle: tool, node: process.versions.modules, built: new Date().toISOString(), inputs }));
    fs.renameSync(tmp, manifest);
    process.stderr.write(`build: dist/${tool}.mjs from ${inputs.length} files\n`);
    return true;
  } catch (err) {
    const first = (err as { errors?: Array<{ text: string; location?: { file: string; line: number } }> }).errors?.[0];
    const why = first ? `${first.location ? `${first.location.file}:${first.location.line}: ` : ''}${first.text}` : (err as Error).message;
    process.stderr.write(`build: ${tool} not bundled (${why}) — it runs through tsx until this is fixed\n`);
    return false;
  }
}

fs.mkdirSync(dist, { recursive: true });
const ok = (await Promise.all(TOOLS.map(bundle))).every(Boolean);
process.exit(ok || bestEffort ? 0 : 1);
