import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The same module runs from src/ (tests, tsx) and from dist/ or dist/chunks/ (bundled CLI), so
// data files are found by walking up to our own package.json rather than by a fixed "../..".
let cached: string | undefined;

export function packageRoot(): string {
  if (cached) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'data', 'root-ca'))) {
      cached = dir;
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('fp-yocto: cannot find the package root (data/root-ca is missing)');
    dir = parent;
  }
}

/** The Amazon root CAs shipped with the project (DESIGN.md "Connection"). */
export function amazonRootCaPath(which: 1 | 3 = 1): string {
  return path.join(packageRoot(), 'data', 'root-ca', `AmazonRootCA${which}.pem`);
}
