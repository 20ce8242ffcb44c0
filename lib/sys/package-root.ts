// Where this package's own files (templates/, scripts/) are, wherever the running module is: the
// nearest directory above it that holds package.json. That is the checkout for lib/sys/*.ts, the
// installed package for its compiled dist-lib/lib/sys/*.js (one level deeper), and the checkout
// again for the CLI bundle, whose import.meta.url is each source file's own (scripts/build.mts).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageRoot(moduleUrl: string): string {
  const start = path.dirname(fileURLToPath(moduleUrl));
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(start, '..', '..');
  }
}
