// Assembles the one statement that runs a differential refresh (I1, I2): the snapshot, the
// changes it consumes ($1 = previous frontier, $2 = that refresh's own xid), the delta arms and
// the DML that applies them, all under the single snapshot of one statement.
import { ident, qualified } from '../../../shared/pg/quote.js';
import { deparse } from '../ast.js';
import type { Arm } from './arms.js';
import {
  changedFlag,
  changesCte,
  deltaCte,
  keptColumns,
  oldCte,
  type Source,
  type Sources,
  undoneCte,
  visibleColumns,
} from './sources.js';

export interface Apply {
  /** CTEs after __pgt_delta, in order; they must skip everything when __pgt_flags.truncated. */
  ctes: [name: string, sql: string][];
  inserted: string;
  deleted: string;
}

export const NOT_TRUNCATED = 'NOT (SELECT __pgt_f.truncated FROM __pgt_flags __pgt_f)';

/**
 * How the consumed changes are read: from the buffer, estimated by PostgreSQL from its
 * statistics, or (`many`, for large batches) through pgtrickle._pending_many or _pending_few,
 * estimated at 1,000 or 10 rows by the size of the table.
 */
export type ChangeReader = 'buffer' | 'many';

export function deltaStatement(
  used: Sources,
  arms: Arm[],
  apply: Apply,
  reader: ChangeReader = 'buffer',
): string {
  const sources = used.list();
  const ctes: [string, string][] = [
    [
      '__pgt_snap',
      `SELECT q.s, q.own, pg_catalog.pg_snapshot_xmin(q.s) AS lo, pg_catalog.pg_snapshot_xmax($1::pg_snapshot) AS hi
         FROM (SELECT pg_catalog.pg_current_snapshot() AS s, pg_catalog.pg_current_xact_id_if_assigned() AS own) q`,
    ],
    ...sources.flatMap((s): [string, string][] => [
      [changesCte(s.index), consumed(s, used, reader)],
      [deltaCte(s.index), weighted(s, used)],
      ...(used.needsOld(s)
        ? ([
            [undoneCte(s.index), undone(s, used)],
            [oldCte(s.index), previous(s, used)],
          ] as [string, string][])
        : []),
    ]),
    ['__pgt_flags', flags(sources)],
    ...used.derivedList(),
    [
      '__pgt_delta',
      arms.length > 0 ? arms.map((a) => deparse({ SelectStmt: a.stmt })).join(' UNION ALL ') : emptyDelta(),
    ],
    ...apply.ctes,
  ];
  // The consumed changes are read once; their weighted form is cheap to recompute from them, and
  // inlining it into each arm saves writing it out.
  const materialized = new Set([
    '__pgt_snap',
    '__pgt_flags',
    ...sources.flatMap((s) => [changesCte(s.index), undoneCte(s.index)]),
    ...used.derivedList().map(([name]) => name),
  ]);
  const inlined = new Set(sources.flatMap((s) => [deltaCte(s.index), oldCte(s.index)]));
  const withList = ctes
    .map(([name, sql]) => {
      const how = materialized.has(name) ? 'MATERIALIZED ' : inlined.has(name) ? 'NOT MATERIALIZED ' : '';
      return `${name} AS ${how}(${sql})`;
    })
    .join(',\n');
  return `WITH ${withList}
SELECT (SELECT __pgt_snap.s FROM __pgt_snap) AS snapshot, ${apply.inserted} AS inserted, ${apply.deleted} AS deleted,
       (SELECT __pgt_f.truncated FROM __pgt_flags __pgt_f) AS truncated,
       ${sources.map((s) => `(SELECT count(*) FROM ${changesCte(s.index)})`).join(' + ') || '0'} AS consumed`;
}

// Exactly the change rows committed in the statement's snapshot (or written by this very
// transaction) that the previous frontier had not seen. The xid bound can use the buffer's index.
// The visibility test is written as `… <> 0`: PostgreSQL estimates that at 99.5%, while as plain
// function calls it would guess a third each and plan every join above for a few dozen changes
// where there are thousands. Its first branch settles almost every row with two comparisons: a
// transaction that began after the previous snapshot (at or above its xmax) and ended before this
// one (below its xmin) is new, unless it is the previous refresh's own; the snapshot tests, two
// function calls per row, are left for the rest (0.12 µs a row, 40% of the test, measured over
// 10,000 changes).
// Only the columns the statement reads are kept: the CTE is written out once, into memory up to
// work_mem and to disk past it, and a wide table's change rows (TPC-H lineitem has 16 columns,
// each with a new and an old value) are mostly columns the query does not read.
// Read through pgtrickle._pending_many or _pending_few, the rows are those of the same bound on
// the xid; only PostgreSQL's estimate differs (ARCHITECTURE.md, "One statement").
function consumed(s: Source, used: Sources, reader: ChangeReader): string {
  const values = keptColumns(s.relation, used.referenced).flatMap((c) => [
    ident(`new_${c.attnum}`),
    ident(`old_${c.attnum}`),
  ]);
  const columns = ['action', ...values].map((c) => `b.${c}`).join(', ');
  switch (reader) {
    case 'buffer':
      return `SELECT ${columns} FROM ${buffer(s)} b CROSS JOIN __pgt_snap WHERE ${consumedBy('b')}`;
    case 'many': {
      const pending =
        (s.relation.rows ?? 0) < SMALL_TABLE_ROWS ? 'pgtrickle._pending_few' : 'pgtrickle._pending_many';
      return `SELECT ${columns} FROM ${pending}(NULL::${buffer(s)}, ${FROM_XID}) b CROSS JOIN __pgt_snap WHERE ${visible('b')}`;
    }
    default: {
      const exhaustive: never = reader;
      return exhaustive;
    }
  }
}

function buffer(s: Source): string {
  return `pgtrickle_changes.${ident(s.relation.buffer ?? '')}`;
}

const FROM_XID = 'pg_catalog.pg_snapshot_xmin($1::pg_snapshot)';

// A table smaller than this (by its last ANALYZE) has few changes even in a large batch (TPC-H
// nation, region, supplier): estimated at 1,000 each, they turned Q2's joins into hash joins of
// whole tables (20 -> 50 ms at SF 0.1).
const SMALL_TABLE_ROWS = 10_000;

function consumedBy(alias: string): string {
  return `${alias}.xid >= ${FROM_XID}
      AND ${visible(alias)}`;
}

function visible(alias: string): string {
  return `(CASE WHEN ${alias}.xid >= __pgt_snap.hi AND ${alias}.xid < __pgt_snap.lo
                     AND ${alias}.xid IS DISTINCT FROM $2::xid8 THEN 1
                WHEN pgtrickle._seen(${alias}.xid, __pgt_snap.s, __pgt_snap.own)
                 AND NOT pgtrickle._seen(${alias}.xid, $1::pg_snapshot, $2::xid8) THEN 1 ELSE 0 END) <> 0`;
}

// The changes as rows of the relation with a weight: an INSERT is +1, a DELETE −1, an UPDATE
// both, unless it left every column the query reads as it was. Hidden __pgt_ columns of an
// upstream stream table are not exposed. Actions are tested with <>, which PostgreSQL estimates
// at 99.5% on a CTE without statistics, where IN (…) would be half a percent per value.
function weighted(s: Source, used: Sources): string {
  const columns = keptColumns(s.relation, used.referenced);
  const seen = used.referenced;
  const read = seen === 'all' ? columns : columns.filter((c) => seen.has(c.name));
  const moved =
    read.length === visibleColumns(s.relation).length
      ? ''
      : read.length === 0
        ? ` AND b.action <> 'U'`
        : ` AND (b.action <> 'U' OR ROW(${read.map((c) => `b.${ident(`new_${c.attnum}`)}`).join(', ')}) IS DISTINCT FROM ROW(${read.map((c) => `b.${ident(`old_${c.attnum}`)}`).join(', ')}))`;
  const side = (prefix: 'new' | 'old', weight: number, other: 'D' | 'I') =>
    `SELECT ${[...columns.map((c) => `b.${ident(`${prefix}_${c.attnum}`)} AS ${ident(c.name)}`), `${weight} AS __pgt_w`].join(', ')}
       FROM ${changesCte(s.index)} b WHERE b.action <> '${other}' AND b.action <> 'T'${moved}`;
  return `${side('new', 1, 'D')} UNION ALL ${side('old', -1, 'I')}`;
}

// The changes consumed since the previous frontier, undone: each row with its weight negated.
// Materialized: every arm that joins the previous state reads it, and computing it once from
// the buffer rows is cheaper than once per arm.
function undone(s: Source, used: Sources): string {
  const names = keptColumns(s.relation, used.referenced).map((c) => ident(c.name));
  return `SELECT ${[...names.map((c) => `d.${c}`), '-d.__pgt_w AS __pgt_w'].join(', ')} FROM ${deltaCte(s.index)} d`;
}

// The relation at the previous frontier: its rows now, plus the undone changes, as a weighted
// relation. The undone changes stay a bare CTE scan, which makes the relation unparameterizable,
// so a join with it hashes or merges both branches once. As a parameterizable subquery, a nested
// loop could probe the table's index per row, but rescanned every undone change per probe, and
// PostgreSQL, which estimates the changes at a few rows whatever their number, chose that plan
// at any rate of change (probes × changes: TPC-H Q8 at SF 0.01, 1% changed, 2.3 s against 57 ms).
function previous(s: Source, used: Sources): string {
  const names = keptColumns(s.relation, used.referenced).map((c) => ident(c.name));
  return `SELECT ${[...names.map((c) => `t.${c}`), '1 AS __pgt_w'].join(', ')} FROM ${qualified(s.relation.schema, s.relation.name)} t
    UNION ALL SELECT * FROM ${undoneCte(s.index)} d`;
}

function flags(sources: Source[]): string {
  const truncated = sources.map(
    (s) =>
      `EXISTS (SELECT 1 FROM ${buffer(s)} b CROSS JOIN __pgt_snap WHERE b.action = 'T' AND ${consumedBy('b')})`,
  );
  const changed = sources.map(
    (s) => `EXISTS (SELECT 1 FROM ${deltaCte(s.index)}) AS ${changedFlag(s.index)}`,
  );
  return `SELECT ${[`${truncated.join(' OR ') || 'false'} AS truncated`, ...changed].join(', ')}`;
}

function emptyDelta(): string {
  return 'SELECT 0 AS __pgt_w WHERE false';
}
