import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase } from '../harness/index.js';

const run = promisify(execFile);

async function pgtrickle(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run('npx', ['tsx', 'cluster/cli.ts', ...args], {
      env: { ...process.env, PGTRICKLE_DATABASE_URL: '', DATABASE_URL: '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('pgtrickle migrate', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;

  beforeAll(async () => {
    db = await freshDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('installs the catalog, then reports it up to date', async () => {
    const first = await pgtrickle(['migrate', '--database-url', db.url]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^applied migration 0001 catalog$/m);
    const again = await pgtrickle(['migrate'], { PGTRICKLE_DATABASE_URL: db.url });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^pgtrickle catalog is up to date at version \d+$/m);
  });

  it('prints one JSON object with --json', async () => {
    const result = await pgtrickle(['migrate', '--json', '--database-url', db.url]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ applied: [] });
  });

  it('fails with one clear line and exit code 1 when no database is given', async () => {
    const result = await pgtrickle(['migrate']);
    expect(result.code).toBe(1);
    // npx may add warnings of its own; the CLI's part is this one line.
    expect(result.stderr).toMatch(
      /^pgtrickle: error: no database given\. Hint: Pass --database-url postgres:\/\/user@host\/db or set PGTRICKLE_DATABASE_URL\.$/m,
    );
  });

  it('exits 2 on an unknown command', async () => {
    const result = await pgtrickle(['frobnicate']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unknown command 'frobnicate'/);
  });
});
