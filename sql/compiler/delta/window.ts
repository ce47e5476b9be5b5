// Window functions on top of the query: the stream table's rows are grouped by their window
// partition, and a refresh recomputes the partitions its changes touch and writes the rows that
// differ from what the stream table holds for them. It reads the changes only for their
// partition keys and computes each touched partition once, where the rule for windows below the
// top (grouped.ts) computes it before and after the changes.
//
// It applies to a window block at the top, and to a filter and projection over one window
// subquery (per-group top-N: `SELECT … FROM (SELECT …, row_number() OVER (PARTITION BY g …) AS
// rn FROM t) s WHERE s.rn <= 10`), when the stream table keeps every partition key as a column
// of its own: that column is how a refresh finds a partition's rows. Otherwise the query goes
// the multiset way.
import { ident } from '../../../shared/pg/quote.js';
import type { QueryOp } from '../analyze.js';
import { aliasRenamed, and, clone, deparse, type Node, resTarget, type SelectStmt } from '../ast.js';
import { keyName, type RootContext, type RootPlan } from './aggregate.js';
import { queryArms } from './arms.js';
import { ROW_ID, rowIdOf } from './multiset.js';
import { outputNames } from './names.js';
import { NOT_TRUNCATED } from './statement.js';
import { touchedGroups } from './touched.js';
import { fromListSide } from './variants.js';

type Window = Extract<QueryOp, { kind: 'window' }>;

export function windowRoot(op: QueryOp, ctx: RootContext): RootPlan | undefined {
  const found = topWindow(op);
  if (!found) return undefined;
  const { window, outputs, refill } = found;
  const keys = window.partitionBy;
  // The stream table column holding each partition key.
  const held = keys.map((k) => outputs.get(deparse(k)));
  if (held.some((c) => c === undefined)) return undefined;
  const keyColumns = (held as number[]).map((i) => ident(ctx.columns[i] as string));
  const keyNames = keys.map((_, j) => keyName(j));

  const { withClause: _w, sortClause: _s, ...block } = clone(window.stmt);
  const input: QueryOp = {
    kind: 'select',
    stmt: { ...block, targetList: keys.map((k, j) => resTarget(clone(k), keyName(j))) },
    from: window.from,
  };
  const arms = queryArms(input, ctx.sources, (_stmt, targets) => targets);
  const touched = touchedGroups(
    keys,
    keyNames.map((k) => `__pgt_a.${k}`),
    '__pgt_aff __pgt_a',
    window,
  );
  const current: SelectStmt = {
    ...block,
    fromClause: fromListSide(window.from, ctx.sources).cur,
    whereClause: and([block.whereClause, touched]),
  };
  const cols = ctx.columns.map(ident);
  const q = (cs: string[]) => cs.map((c) => `q.${c}`);
  const rows = (query: string) =>
    `SELECT ${[...q(cols), rowIdOf(q(keyColumns))].join(', ')} FROM (${query}) q(${cols.join(', ')})`;
  const sameKeys = keyColumns.map((c, j) => `t.${c} IS NOT DISTINCT FROM __pgt_a.${keyName(j)}`);
  // Rows are paired by their hash, their occurrence among rows of that hash, and their values,
  // so that identical rows count and a collision of two different rows pairs neither.
  const paired = (a: string, b: string) =>
    [
      `${b}.__pgt_h = ${a}.__pgt_h`,
      `${b}.__pgt_occ = ${a}.__pgt_occ`,
      ...cols.map((c) => `${b}.${c} IS NOT DISTINCT FROM ${a}.${c}`),
    ].join(' AND ');
  const numbered = (select: string) =>
    `SELECT r.*, row_number() OVER (PARTITION BY r.__pgt_h) AS __pgt_occ FROM (${select}) r`;
  return {
    strategy: 'partition_recompute',
    indexColumns: [ROW_ID],
    hiddenColumns: [{ name: ROW_ID, type: 'bigint' }],
    fullSql: `INSERT INTO ${ctx.storage} (${[...cols, ROW_ID].join(', ')}) ${rows(ctx.facts.definingQuery)}`,
    arms,
    apply: {
      ctes: [
        [
          '__pgt_aff',
          `SELECT DISTINCT ${keyNames.map((k) => `d.${k}`).join(', ')} FROM __pgt_delta d WHERE ${NOT_TRUNCATED}`,
        ],
        // The touched partitions recomputed, and their rows in the stream table (found by the
        // hash of their key, then by the key itself: a partition whose hash collides with a
        // touched one's is left alone). Only rows that differ between the two are written.
        [
          '__pgt_new',
          numbered(
            `SELECT ${[...q(cols), `${rowIdOf(q(keyColumns))} AS ${ROW_ID}`, `${rowIdOf(q(cols))} AS __pgt_h`].join(', ')}
               FROM (${deparse({ SelectStmt: refill(current) })}) q(${cols.join(', ')})`,
          ),
        ],
        [
          '__pgt_old',
          numbered(
            `SELECT t.ctid AS __pgt_tid, ${cols.map((c) => `t.${c}`).join(', ')}, ${rowIdOf(cols.map((c) => `t.${c}`))} AS __pgt_h
               FROM ${ctx.storage} t
              WHERE t.${ROW_ID} = ANY (ARRAY(SELECT ${rowIdOf(keyNames.map((k) => `__pgt_a.${k}`))} FROM __pgt_aff __pgt_a))
                AND EXISTS (SELECT 1 FROM __pgt_aff __pgt_a
                             WHERE ${[`${rowIdOf(keyNames.map((k) => `__pgt_a.${k}`))} = t.${ROW_ID}`, ...sameKeys].join(' AND ')})`,
          ),
        ],
        [
          '__pgt_del',
          `DELETE FROM ${ctx.storage} t WHERE t.ctid = ANY (ARRAY(
             SELECT o.__pgt_tid FROM __pgt_old o WHERE NOT EXISTS (SELECT 1 FROM __pgt_new n WHERE ${paired('o', 'n')}))) RETURNING 1`,
        ],
        [
          '__pgt_ins',
          `INSERT INTO ${ctx.storage} (${[...cols, ROW_ID].join(', ')})
           SELECT ${[...cols.map((c) => `n.${c}`), `n.${ROW_ID}`].join(', ')} FROM __pgt_new n
            WHERE NOT EXISTS (SELECT 1 FROM __pgt_old o WHERE ${paired('n', 'o')}) RETURNING 1`,
        ],
      ],
      inserted: '(SELECT count(*) FROM __pgt_ins)',
      deleted: '(SELECT count(*) FROM __pgt_del)',
    },
  };
}

interface TopWindow {
  window: Window;
  /** Output column position of each expression the top block outputs as it is, by its text. */
  outputs: Map<string, number>;
  /** The query with the window block replaced by another (its touched partitions). */
  refill: (windowBlock: SelectStmt) => SelectStmt;
}

function topWindow(op: QueryOp): TopWindow | undefined {
  if (op.kind === 'window') {
    const outputs = new Map<string, number>();
    (op.stmt.targetList ?? []).forEach((t, i) => {
      const text = 'ResTarget' in t && t.ResTarget.val ? deparse(t.ResTarget.val) : undefined;
      if (text !== undefined && !outputs.has(text)) outputs.set(text, i);
    });
    return { window: op, outputs, refill: (block) => block };
  }
  const [item] = op.kind === 'select' ? op.from : [];
  if (
    op.kind !== 'select' ||
    op.from.length !== 1 ||
    item?.kind !== 'subquery' ||
    item.query.kind !== 'window'
  )
    return undefined;
  const window = item.query;
  const names = aliasRenamed(item.node, outputNames(window));
  // A subquery column is the window block's target of the same position.
  const byName = new Map<string, string>();
  (window.stmt.targetList ?? []).forEach((t, i) => {
    const val = 'ResTarget' in t ? t.ResTarget.val : undefined;
    const name = names[i];
    if (val && name !== undefined && !byName.has(name)) byName.set(name, deparse(val));
  });
  const outputs = new Map<string, number>();
  (op.stmt.targetList ?? []).forEach((t, i) => {
    const val = 'ResTarget' in t ? t.ResTarget.val : undefined;
    const fields = val && 'ColumnRef' in val ? (val.ColumnRef.fields ?? []) : [];
    const parts = fields.map((f) => ('String' in f ? f.String.sval : undefined));
    const name =
      parts.length === 2 && parts[0] === item.alias ? parts[1] : parts.length === 1 ? parts[0] : undefined;
    const text = name === undefined ? undefined : byName.get(name);
    if (text !== undefined && !outputs.has(text)) outputs.set(text, i);
  });
  const sub = (item.node as { RangeSubselect: object }).RangeSubselect;
  const { withClause: _w, sortClause: _s, ...outer } = clone(op.stmt);
  return {
    window,
    outputs,
    refill: (block): SelectStmt => ({
      ...outer,
      fromClause: [{ RangeSubselect: { ...sub, subquery: { SelectStmt: block } } } as Node],
    }),
  };
}
