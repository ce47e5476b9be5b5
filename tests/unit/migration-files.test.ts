import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMigrations } from '../../sql/migrate.js';

function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgt-migrations-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

describe('migration files', () => {
  it('are numbered from 1 without gaps, each with a description', () => {
    const migrations = loadMigrations();
    expect(migrations.length).toBeGreaterThan(0);
    migrations.forEach((m, i) => {
      expect(m.version).toBe(i + 1);
      expect(m.description).toMatch(/^[a-z0-9 ]+$/);
    });
  });

  it('reject a gap in the numbering', () => {
    const dir = dirWith({ '0001_a.sql': 'SELECT 1;', '0003_c.sql': 'SELECT 1;' });
    expect(() => loadMigrations(dir)).toThrow(/0003_c\.sql should be number 2/);
  });

  it('reject a file name that is not NNNN_words.sql', () => {
    const dir = dirWith({ '1_first.sql': 'SELECT 1;' });
    expect(() => loadMigrations(dir)).toThrow(/1_first\.sql is not NNNN_words\.sql/);
  });
});
