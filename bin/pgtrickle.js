#!/usr/bin/env node
// Runs the compiled CLI; `npm install` builds it through the prepare script.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cluster/cli.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('pgtrickle: not built yet\nhint: run npm run build\n');
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);
