// Whether dist/<tool>.cjs was built from exactly the files on disk now: scripts/launch.mjs asks
// before running the bundle, test/helpers/ca.ts before the suites start the CLI (a stale bundle
// rebuilds once instead of making every CLI start go through tsx). Plain JavaScript on purpose:
// it runs before any TypeScript loader exists.
import fs from 'node:fs';
import { createHash } from 'node:crypto';

/** Why the file at root/rec.path (a normalized relative path from the build) differs, or null. */
function changed(root, rec) {
  // String concatenation, not path.join: ~260 path.join calls cost ~10 ms before V8 optimises them.
  const st = fs.statSync(`${root}/${rec.path}`, { throwIfNoEntry: false });
  if (!st) return `${rec.path} is gone`;
  if (st.size !== rec.size) return `${rec.path} changed`;
  if (st.mtimeMs === rec.mtimeMs) return null;
  // Touched but maybe not changed (a checkout, a formatter): the content decides.
  return createHash('sha256')
    .update(fs.readFileSync(`${root}/${rec.path}`))
    .digest('hex') === rec.sha256
    ? null
    : `${rec.path} changed`;
}

/**
 * { manifest } when the bundle matches its inputs; { stale: why } when a build exists but something
 * changed since (an edit, a pull); { missing: true } when there is no usable build at all.
 */
export function bundleState(root, tool) {
  let m;
  try {
    m = JSON.parse(fs.readFileSync(`${root}/dist/${tool}.inputs.json`, 'utf8'));
  } catch {
    return { missing: true };
  }
  if (m.bundle !== tool || !m.output) return { missing: true };
  if (m.node !== process.versions.modules) return { stale: `it was built for another Node (ABI ${m.node})` };
  const bundle = changed(root, m.output);
  if (bundle) return { stale: `${bundle} after the build` };
  for (const rec of m.inputs) {
    const why = changed(root, rec);
    if (why) return { stale: why };
  }
  return { manifest: m };
}
