// Applies the numbered migrations in sql/migrations, each in its own transaction and each
// recorded in pgtrickle.pgt_schema_version, so running it again changes nothing.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { PgTrickleError } from '../shared/errors/index.js';

export interface Migration {
  version: number;
  description: string;
  file: string;
  sql: string;
}

export interface MigrateResult {
  applied: Migration[];
  version: number;
}

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

// Transaction-scoped, so it holds behind PgBouncer in transaction mode as well.
const LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('pgtrickle.migrate'))";

const BOOTSTRAP_SQL = `
  CREATE SCHEMA IF NOT EXISTS pgtrickle;
  CREATE TABLE IF NOT EXISTS pgtrickle.pgt_schema_version (
    version     integer PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    description text NOT NULL
  );
  GRANT SELECT ON pgtrickle.pgt_schema_version TO PUBLIC;`;

/** Where the .sql files are, whether this module runs from source or from dist/. */
export function migrationsDir(): string {
  const candidates = ['./migrations/', '../../sql/migrations/'].map((rel) =>
    fileURLToPath(new URL(rel, import.meta.url)),
  );
  const found = candidates.find((dir) => existsSync(dir));
  if (!found) {
    throw new PgTrickleError(
      'MIGRATION_FILE_INVALID',
      `no migrations directory in ${candidates.join(' or ')}`,
    );
  }
  return found;
}

export function loadMigrations(dir: string = migrationsDir()): Migration[] {
  const migrations = readdirSync(dir)
    .filter((file) => file.endsWith('.sql'))
    .map((file) => {
      const match = FILE_PATTERN.exec(file);
      if (!match?.[1] || !match[2]) {
        throw new PgTrickleError(
          'MIGRATION_FILE_INVALID',
          `migration file name ${file} is not NNNN_words.sql`,
        );
      }
      return {
        version: Number(match[1]),
        description: match[2].replaceAll('_', ' '),
        file,
        sql: readFileSync(join(dir, file), 'utf8'),
      };
    })
    .sort((a, b) => a.version - b.version);
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new PgTrickleError('MIGRATION_FILE_INVALID', `migration ${m.file} should be number ${i + 1}`, {
        hint: 'Migrations are numbered 0001, 0002, … without gaps or duplicates.',
      });
    }
  });
  return migrations;
}

/** The newest applied migration, 0 when pgtrickle is not installed. */
export async function installedVersion(client: pg.Pool | pg.ClientBase): Promise<number> {
  const exists = await client.query(
    "SELECT 1 FROM pg_class WHERE oid = to_regclass('pgtrickle.pgt_schema_version')",
  );
  if (exists.rowCount === 0) return 0;
  const { rows } = await client.query<{ version: number }>(
    'SELECT coalesce(max(version), 0) AS version FROM pgtrickle.pgt_schema_version',
  );
  return rows[0]?.version ?? 0;
}

export async function migrate(
  client: pg.ClientBase,
  options: { migrations?: Migration[]; onApplied?: (m: Migration) => void } = {},
): Promise<MigrateResult> {
  const migrations = options.migrations ?? loadMigrations();
  const latest = migrations.length;
  const installed = await installedVersion(client);
  if (installed > latest) {
    throw new PgTrickleError(
      'CATALOG_NEWER_THAN_NODE',
      `the pgtrickle catalog is at version ${installed}, newer than this node knows (${latest})`,
      { hint: 'Upgrade this node to the release that installed the catalog.' },
    );
  }
  const applied: Migration[] = [];
  for (const m of migrations.slice(installed)) {
    if (await applyOne(client, m)) {
      applied.push(m);
      options.onApplied?.(m);
    }
  }
  return { applied, version: latest };
}

// Another node may have applied it while this one waited for the lock: then it is skipped.
async function applyOne(client: pg.ClientBase, m: Migration): Promise<boolean> {
  await client.query('BEGIN');
  try {
    await client.query(LOCK_SQL);
    await client.query(BOOTSTRAP_SQL);
    const done = await client.query('SELECT 1 FROM pgtrickle.pgt_schema_version WHERE version = $1', [
      m.version,
    ]);
    if (done.rowCount === 0) {
      await client.query(m.sql);
      await client.query('INSERT INTO pgtrickle.pgt_schema_version (version, description) VALUES ($1, $2)', [
        m.version,
        m.description,
      ]);
    }
    await client.query('COMMIT');
    return done.rowCount === 0;
  } catch (cause) {
    await client.query('ROLLBACK').catch(() => undefined);
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new PgTrickleError('MIGRATION_FAILED', `migration ${m.file} failed: ${message}`, { cause });
  }
}
