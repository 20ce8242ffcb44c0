// `make build` / `npm run build`: bundles each CLI tool into dist/<tool>.cjs with esbuild (which
// tsx already brings), plus dist/<tool>.inputs.json, the list of every file the bundle was made
// from. scripts/launch.mjs runs the bundle only while all of them are unchanged; otherwise the
// tool runs from source through tsx. dist/ is git-ignored and never needs to be up to date.
// `--best-effort`: a tool that does not bundle (someone's work in progress) keeps using tsx.
//
// CommonJS, not ESM, because only a classic script can use V8's code cache on Node 20 (vm.Script
// cachedData; Node 22's module.enableCompileCache() does the same for ESM): launch.mjs keeps the
// compiled code next to the bundle, which saves most of its compile time. The bundle is strict
// mode throughout, as the ESM sources expect.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const bestEffort = process.argv.includes('--best-effort');
const TOOLS = ['rivet-ca', 'provision-ct'];

/**
 * `import.meta.url` in a CommonJS bundle: esbuild leaves it empty, so every use becomes the
 * bundle's own URL (what the ESM bundle gave node_modules before), and in our sources the URL of
 * the file itself, so that lib/sys/template.ts finds templates/ and lib/node/timer.ts the checkout
 * whatever the bundle's depth.
 */
const BUNDLE_URL = '__rivetBundleUrl';
const sourceUrls: Plugin = {
  name: 'source-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.m?ts$/ }, (args) => {
      const rel = path.relative(root, args.path);
      if (rel.startsWith('..') || rel.startsWith('node_modules')) return undefined;
      const fromDist = JSON.stringify(path.relative(dist, args.path));
      const text = fs
        .readFileSync(args.path, 'utf8')
        .replaceAll('import.meta.url', `new URL(${fromDist}, ${BUNDLE_URL}).href`);
      return { contents: text, loader: 'ts' };
    });
  },
};

/**
 * yargs lays out the help text on every run, even when it is never shown (command.js caches it
 * after each handler), and measures each piece with string-width. Importing string-width builds an
 * Intl.Segmenter and several \p{…} Unicode regexes, and its first call loads ICU's segmentation
 * data: ~30 ms, the largest single item of a rivet-ca start-up. Every import of it in the bundle
 * gets this stand-in instead: printable ASCII, and the few other characters our help text uses
 * (NARROW), have the width of their length in every string-width version (one grapheme and one
 * narrow column each); any other text goes to the real package, loaded on first need (esbuild
 * turns that require() into a lazy init of the bundled module).
 */
// Each checked against string-width: one column. (Our descriptions use "—" and "§": without them
// here, every start-up loaded the real package anyway.)
const NARROW = '—–…§·→≤≥×•‘’“”';
const asciiStringWidth: Plugin = {
  name: 'ascii-string-width',
  setup(b) {
    b.onResolve({ filter: /^string-width$/ }, (args) =>
      args.kind === 'import-statement'
        ? { path: args.path, namespace: 'ascii-string-width', pluginData: args.resolveDir }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'ascii-string-width' }, (args) => ({
      contents: `export default (text, options) => typeof text === 'string' && /^[\\x20-\\x7e${NARROW}]*$/.test(text) ? text.length : require(${JSON.stringify(args.path)}).default(text, options);`,
      resolveDir: args.pluginData as string,
      loader: 'js',
    }));
  },
};

function record(rel: string) {
  const file = path.join(root, rel);
  const st = fs.statSync(file);
  return {
    path: rel,
    size: st.size,
    mtimeMs: st.mtimeMs,
    sha256: createHash('sha256').update(fs.readFileSync(file)).digest('hex'),
  };
}

async function bundle(tool: string): Promise<boolean> {
  const entry = path.join(root, 'scripts', `${tool}.mts`);
  const outfile = path.join(dist, `${tool}.cjs`);
  const manifest = path.join(dist, `${tool}.inputs.json`);
  fs.rmSync(manifest, { force: true }); // stale-proof even if this build dies half-way
  // The ESM bundle and the code caches of earlier bundles (launch.mjs keys them by bundle hash).
  for (const f of fs.readdirSync(dist))
    if (f === `${tool}.mjs` || (f.startsWith(`${tool}.`) && f.endsWith('.codecache')))
      fs.rmSync(path.join(dist, f), { force: true });
  if (!fs.existsSync(entry)) return true;
  // Inputs are hashed after esbuild read them: a file saved while it ran would be recorded with
  // content the bundle does not have. Anything modified since this instant leaves no manifest.
  const started = Date.now() - 1;
  try {
    const result = await build({
      write: false, // written below through a temp file: a launcher never reads a half-written bundle
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      absWorkingDir: root,
      minifyWhitespace: true,
      minifySyntax: true,
      metafile: true,
      logLevel: 'silent',
      legalComments: 'none',
      define: { 'import.meta.url': BUNDLE_URL },
      banner: { js: `'use strict'; var ${BUNDLE_URL} = require('node:url').pathToFileURL(__filename).href;` },
      plugins: [sourceUrls, asciiStringWidth],
      // Loaded from node_modules when needed, never at start-up: the MCP SDK (an optional peer) by
      // `mcp-bridge` alone, undici (~1 MB of source) by the commands that fetch.
      external: ['@modelcontextprotocol/sdk', '@modelcontextprotocol/sdk/*', 'undici'],
    });
    // Node and esbuild need the same view of the sources: the launcher checks all of these, plus
    // this script and the lockfile (a dependency change that esbuild would resolve differently).
    const inputs = [...Object.keys(result.metafile!.inputs), 'scripts/build.mts', 'package-lock.json']
      .filter((p, i, all) => all.indexOf(p) === i && !p.startsWith('<') && !p.startsWith('ascii-string-width:'))
      .map(record);
    const changed = inputs.find((i) => i.mtimeMs >= started);
    if (changed) {
      process.stderr.write(
        `build: ${tool} not recorded (${changed.path} changed while bundling) — it runs through tsx until the next build\n`,
      );
      return false;
    }
    const bundleTmp = `${outfile}.${process.pid}.tmp`;
    fs.writeFileSync(bundleTmp, result.outputFiles![0]!.contents);
    fs.renameSync(bundleTmp, outfile);
    const tmp = `${manifest}.tmp`;
    // The bundle itself is recorded too: its hash names the code cache, its size and mtime let the
    // launcher notice a bundle that changed after this build.
    const out = record(path.relative(root, outfile));
    fs.writeFileSync(
      tmp,
      JSON.stringify({
        bundle: tool,
        node: process.versions.modules,
        built: new Date().toISOString(),
        output: out,
        inputs,
      }),
    );
    fs.renameSync(tmp, manifest);
    process.stderr.write(`build: dist/${tool}.cjs from ${inputs.length} files\n`);
    return true;
  } catch (err) {
    const first = (err as { errors?: Array<{ text: string; location?: { file: string; line: number } }> }).errors?.[0];
    const why = first
      ? `${first.location ? `${first.location.file}:${first.location.line}: ` : ''}${first.text}`
      : (err as Error).message;
    process.stderr.write(`build: ${tool} not bundled (${why}) — it runs through tsx until this is fixed\n`);
    return false;
  }
}

fs.mkdirSync(dist, { recursive: true });
const ok = (await Promise.all(TOOLS.map(bundle))).every(Boolean);
process.exit(ok || bestEffort ? 0 : 1);
