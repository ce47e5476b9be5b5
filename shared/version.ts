// The node's code version (package.json), as opposed to the catalog version, which is the number
// of the newest migration applied to a database.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function packageVersion(): string {
  // From source the package is one folder up; from dist/ it is two.
  for (const rel of ['../package.json', '../../package.json']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (!existsSync(path)) continue;
    const pkg = JSON.parse(readFileSync(path, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'pgtrickle' && pkg.version) return pkg.version;
  }
  return '0.0.0';
}

export const LIBRARY_VERSION = packageVersion();
