// The property every differential shape must have: from any starting rows, after any batches of
// DML (each one transaction), each refresh leaves the stream table equal to its query (I5), and
// a refresh that had something to apply applied it as a delta unless a source was truncated.
// Failing seeds are replayed first from `regressions`.
import fc from 'fast-check';
import type pg from 'pg';
import { expect } from 'vitest';
import { divergence, lastAction } from './db.js';

export interface DmlSpec<Op extends { op: string }> {
  ops: fc.Arbitrary<Op>;
  statement: (o: Op) => [string, unknown[]];
  /** The tables emptied before each run. */
  tables: string[];
}

export async function assertStaysEqual<Op extends { op: string }>(
  sql: pg.Client,
  name: string,
  dml: DmlSpec<Op>,
  regressions: { seed: number; path: string }[] = [],
): Promise<void> {
  const batches = fc.tuple(
    fc.array(dml.ops, { minLength: 10, maxLength: 25 }),
    fc.array(fc.array(dml.ops, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 4 }),
  );
  // Every refresh is checked as a delta: AUTO must not trade one for a full recompute because
  // an earlier delta happened to be slow on a loaded machine.
  await sql.query('SET pgtrickle.auto_cost_fallback = off');
  const property = fc.asyncProperty(batches, async ([initial, changes]) => {
    await sql.query(`TRUNCATE ${dml.tables.join(', ')}`);
    for (const o of initial) await sql.query(...dml.statement(o));
    await sql.query('SELECT pgtrickle.refresh_stream_table($1)', [name]);
    for (const batch of changes) {
      await sql.query('BEGIN');
      for (const o of batch) await sql.query(...dml.statement(o));
      await sql.query('COMMIT');
      const { rows } = await sql.query('SELECT pgtrickle._refresh(pgtrickle._resolve($1), NULL, $2) AS id', [
        name,
        'MANUAL',
      ]);
      // A batch that changed nothing is skipped; any other is applied as a delta unless it truncated.
      const truncated = batch.some((o) => o.op === 'truncate');
      if (rows[0]?.id !== null && !truncated) expect(await lastAction(sql, name)).toBe('DIFFERENTIAL');
      expect(await divergence(sql, name), JSON.stringify(batch)).toBe(0);
    }
  });
  for (const regression of regressions) {
    await fc.assert(property, { ...regression, endOnFailure: true });
  }
  await fc.assert(property, { numRuns: Number(process.env.PGTRICKLE_PROPERTY_RUNS ?? 25) });
}
