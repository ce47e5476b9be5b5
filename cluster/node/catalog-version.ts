// Whether the catalog a node finds is the one its code was written for. A node migrates on start
// unless told not to; one that may not (or finds a newer catalog) waits, refreshing nothing,
// until `pgtrickle migrate` (or its own upgrade) makes the two agree.
import type pg from 'pg';
import { installedVersion, loadMigrations } from '../../sql/migrate.js';

export type CatalogFit =
  | { readonly kind: 'current'; readonly version: number }
  | { readonly kind: 'behind' | 'ahead'; readonly installed: number; readonly expected: number };

let expected: number | undefined;

/** The number of migrations this code ships; read from disk once, as they cannot change while it runs. */
export function expectedCatalogVersion(): number {
  expected ??= loadMigrations().length;
  return expected;
}

export function compareCatalog(installed: number, expected: number): CatalogFit {
  if (installed === expected) return { kind: 'current', version: installed };
  return { kind: installed < expected ? 'behind' : 'ahead', installed, expected };
}

export async function catalogFit(db: pg.Pool | pg.ClientBase, expected: number): Promise<CatalogFit> {
  return compareCatalog(await installedVersion(db), expected);
}

/** The WARNING a mismatched node logs: both versions, and what to do. */
export function mismatchMessage(f: Exclude<CatalogFit, { kind: 'current' }>, library: string): string {
  switch (f.kind) {
    case 'behind':
      return `pgtrickle node ${library} expects catalog version ${f.expected}, the database has catalog version ${f.installed}: not refreshing until it is migrated (run pgtrickle migrate)`;
    case 'ahead':
      return `pgtrickle node ${library} expects catalog version ${f.expected}, the database has catalog version ${f.installed}, written by a newer release: not refreshing until this node is upgraded`;
    default: {
      const exhaustive: never = f.kind;
      return exhaustive;
    }
  }
}
