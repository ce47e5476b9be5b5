// Delta rule for an aggregate below the top of the query (a grouped subquery in FROM, such as
// the semi-join keys and scalar aggregates of unnest.ts): for the groups its input's changes
// touch, the group rows now (+1) and before (−1). Before is rebuilt from now minus the changes,
// netted per distinct input row, so any aggregate, DISTINCT aggregate or HAVING works, and the
// input needs no previous state of its own (outer joins, nested aggregates).
//
// Window functions follow the same rule, anywhere in the query, with their partitions for
// groups: a row's window values depend on the rows of its partition alone, so the rows of the
// touched partitions now (+1) and before (−1) are the delta. Like a full recompute, this gives
// the same rows only where each window's ORDER BY orders its partition completely (ties in
// row_number, for one, are broken arbitrarily).
import { ident } from '../../../shared/pg/quote.js';
import { functionName, type QueryOp } from '../analyze.js';
import {
  and,
  cteRef,
  deparse,
  expr,
  type Node,
  parseStatements,
  resTarget,
  type SelectStmt,
  selectOf,
  stringValue,
  walk,
} from '../ast.js';
import { UnsupportedConstruct } from '../errors.js';
import { groupKeys, keyAt, mapChildren } from './aggregate.js';
import { type Arm, queryArms, type Targets } from './arms.js';
import { algebraicBefore } from './before-state.js';
import { anyOf, type Guard, guardSql } from './guard.js';
import { subqueryColumn, targetName } from './names.js';
import type { Relevant } from './relevant.js';
import type { Sources } from './sources.js';
import { touchedGroups } from './touched.js';
import { fromListSide } from './variants.js';

/** A block computed per group of its input rows: an aggregate's groups, a window's partitions. */
export type Grouped = Extract<QueryOp, { kind: 'aggregate' | 'window' }>;

const col = (i: number) => `__pgt_c${i}`;

export function groupedArms(op: Grouped, sources: Sources, targets: Targets, relevant?: Relevant): Arm[] {
  const delta = groupedDelta(op, sources, targets, relevant);
  if (!delta) return [];
  const columns = [...delta.names.map((n) => `${delta.cte}.${ident(n)}`), `${delta.cte}.__pgt_w`];
  return [
    {
      stmt: parsed(`SELECT ${columns.join(', ')} FROM ${delta.cte} WHERE ${guardSql(delta.guard)}`),
      guard: delta.guard,
    },
  ];
}

/** The groups as they were: now (+1) minus their delta, a weighted relation like a scan's previous state. */
export function groupedOld(
  op: Grouped,
  sources: Sources,
  targets: Targets,
  relevant?: Relevant,
): () => SelectStmt {
  return () => {
    const { withClause: _w, sortClause: _s, ...block } = op.stmt;
    const renamed = targets(op.stmt, block.targetList ?? []);
    const probed = probedFrom(op, sources);
    const now: SelectStmt = {
      ...block,
      fromClause: sharedFrom(op, sources) ?? probed,
      targetList: [...renamed, resTarget(expr('1'), '__pgt_w')],
    };
    const delta = groupedDelta(op, sources, targets, relevant);
    if (!delta) return now;
    const names = renamed.map(targetName).map(ident);
    return parsed(`SELECT * FROM (${deparse({ SelectStmt: now })}) __pgt_q
      UNION ALL SELECT ${[...names, '-__pgt_w'].join(', ')} FROM ${delta.cte}`);
  };
}

/** The block's FROM list as it is now, its grouped subqueries probed where its WHERE allows. */
function probedFrom(op: Grouped, sources: Sources): Node[] {
  const side = fromListSide(op.from, sources, op.stmt.whereClause);
  return side.probe ?? side.cur;
}

/**
 * The FROM list of an aggregate without GROUP BY or WHERE, its subqueries read from CTEs of the
 * statement: it reads every row of them, so nothing is lost by not pushing a condition down,
 * and its value now, the value its delta starts from and the rows that delta reads share one
 * computation of each (TPC-H Q15's max over revenue0, which aggregated lineitem three times).
 */
export function sharedFrom(op: Grouped, sources: Sources): Node[] | undefined {
  if (op.kind !== 'aggregate' || op.groupBy.length > 0 || op.stmt.whereClause) return undefined;
  if (!op.from.some((item) => item.kind === 'subquery')) return undefined;
  return op.from.map((item) => {
    if (item.kind !== 'subquery') return item.node;
    const sub = (item.node as { RangeSubselect: { subquery: Node; alias?: { colnames?: Node[] } } })
      .RangeSubselect;
    return cteRef(sources.derived(deparse(sub.subquery)), sub.alias, item.alias);
  });
}

function parsed(sql: string): SelectStmt {
  const stmt = selectOf(parseStatements(sql)[0]);
  if (!stmt) throw new Error('generated SQL is not a SELECT');
  return stmt;
}

/** The delta of the groups, defined once in the statement as a CTE of output columns and __pgt_w. */
function groupedDelta(
  op: Grouped,
  sources: Sources,
  targets: Targets,
  relevant?: Relevant,
): { cte: string; names: string[]; guard: Guard } | undefined {
  const { withClause: _w, sortClause: _s, groupClause: _g, havingClause, ...block } = op.stmt;
  const keys = op.kind === 'aggregate' ? groupKeys(op.stmt, op.groupBy) : op.partitionBy;
  const outputs = op.stmt.targetList ?? [];
  // The input columns the targets, keys and HAVING read, in order of first use.
  const refs = new Map<string, Node>();
  for (const { node } of walk([outputs, keys, havingClause])) {
    if (!('ColumnRef' in node)) continue;
    const fields = (node.ColumnRef as { fields?: Node[] }).fields ?? [];
    if (fields.some((f) => 'A_Star' in f)) throw new UnsupportedConstruct('* in a grouped subquery');
    refs.set(deparse(node as Node), node as Node);
  }
  if (refs.size === 0) refs.set('true', expr('true'));
  const index = new Map([...refs.keys()].map((text, i) => [text, i]));
  const overInput = (node: Node): Node => {
    if ('ColumnRef' in node) return expr(`__pgt_in.${col(index.get(deparse(node)) ?? -1)}`);
    return mapChildren(node, overInput);
  };
  const cols = [...refs.keys()].map((_, i) => col(i));
  const input: QueryOp = {
    kind: 'select',
    stmt: { ...block, targetList: [...refs.values()].map((r, i) => resTarget(r, col(i))) },
    from: op.from,
  };
  const arms = queryArms(input, sources, (_stmt, t) => t);
  if (arms.length === 0) return undefined;

  const names = targets(op.stmt, outputs).map(targetName);
  const select = outputs.map((t, i) => {
    const val = 'ResTarget' in t ? t.ResTarget.val : undefined;
    if (!val) throw new UnsupportedConstruct('a grouped subquery without output expressions');
    return `${deparse(overInput(val))} AS ${ident(names[i] ?? '')}`;
  });
  const grouped = keys.map((k) => deparse(overInput(k)));
  const global = keys.length === 0;
  const groupBy = global || op.kind === 'window' ? '' : `GROUP BY ${grouped.join(', ')}`;
  // An aggregate without GROUP BY has a row even for no input: emit it only when something changed.
  const having = and([
    havingClause && overInput(havingClause),
    global ? expr('EXISTS (SELECT FROM __pgt_x)') : undefined,
  ]);
  const aggregate = (source: string, weight: number) =>
    `SELECT ${[...select, `${weight} AS __pgt_w`].join(', ')} FROM ${source} __pgt_in
      ${groupBy} ${having ? `HAVING ${deparse(having)}` : ''}`;
  const current: SelectStmt = {
    ...block,
    fromClause: global
      ? (sharedFrom(op, sources) ?? fromListSide(op.from, sources).cur)
      : narrowed(op, keys, grouped, sources),
    targetList: [...refs.values()].map((r, i) => resTarget(r, col(i))),
    whereClause: and([
      block.whereClause,
      global ? undefined : touchedGroups(keys, grouped, '__pgt_x __pgt_in', op),
    ]),
  };
  const algebraic =
    op.kind === 'aggregate'
      ? algebraicBefore(op, keys, names, overInput, sources.aggregates, {
          now: '__pgt_y',
          changes: '__pgt_x',
        })
      : undefined;
  const before =
    algebraic ??
    aggregate(
      `(SELECT ${cols.map((c) => `__pgt_z.${c}`).join(', ')}
      FROM (SELECT ${cols.join(', ')}, sum(__pgt_u.__pgt_w) AS __pgt_n
              FROM (SELECT ${cols.join(', ')}, 1 AS __pgt_w FROM __pgt_y
                    UNION ALL SELECT ${cols.join(', ')}, -__pgt_w FROM __pgt_x) __pgt_u
             GROUP BY ${cols.join(', ')}) __pgt_z
      CROSS JOIN LATERAL pg_catalog.generate_series(1, __pgt_z.__pgt_n) WHERE __pgt_z.__pgt_n > 0)`,
      -1,
    );
  // Only the groups the enclosing block can join (relevant.ts): the changes of other groups are
  // dropped before they touch anything.
  const joinedKey = relevant && op.kind === 'aggregate' ? keyAt(op, keys, relevant.position) : undefined;
  const changes = arms.map((a) => deparse({ SelectStmt: a.stmt })).join(' UNION ALL ');
  const x =
    relevant && joinedKey
      ? `SELECT * FROM (${changes}) __pgt_in WHERE ${deparse(overInput(joinedKey))} IN (${relevant.sql})`
      : changes;
  const both = `WITH __pgt_x AS (${x}),
               __pgt_y AS (${deparse({ SelectStmt: current })})
          ${aggregate('__pgt_y', 1)} UNION ALL ${before}`;
  // A touched group whose row is the same now as before (a key that still has rows, a min that
  // did not move) cancels out here rather than in every arm that joins it. Netting compares
  // whole rows, so it is done only where each column has an equality by construction.
  const outputNames = names.map(ident);
  const sql =
    op.kind === 'aggregate' && outputs.every((t) => comparable(t, keys))
      ? `SELECT ${outputNames.join(', ')}, sum(__pgt_v.__pgt_w) AS __pgt_w FROM (${both}) __pgt_v
          GROUP BY ${outputNames.join(', ')} HAVING sum(__pgt_v.__pgt_w) <> 0`
      : both;
  return {
    cte: sources.derived(deparse({ SelectStmt: parsed(sql) })),
    names,
    guard: anyOf(arms.map((a) => a.guard)),
  };
}

// Aggregates whose values have a btree equality whatever they aggregate: min and max order by
// one, count is bigint, and sum and avg exist for numbers, intervals and money.
const COMPARABLE_AGGREGATES = new Set(['count', 'sum', 'avg', 'min', 'max']);

/** Whether a grouped subquery's output can be grouped on: a group key, such an aggregate, or arithmetic of them. */
function comparable(target: Node, keys: Node[]): boolean {
  const value = 'ResTarget' in target ? target.ResTarget.val : undefined;
  const keyTexts = new Set(keys.map((k) => deparse(k)));
  const scalar = (node: Node): boolean => {
    if (keyTexts.has(deparse(node))) return true;
    if ('A_Const' in node) return node.A_Const.ival !== undefined || node.A_Const.fval !== undefined;
    if ('FuncCall' in node) {
      const { funcname = [], over } = node.FuncCall;
      const builtin = funcname.length === 1 || stringValue(funcname[0]) === 'pg_catalog';
      return builtin && COMPARABLE_AGGREGATES.has(functionName(funcname)) && !over;
    }
    return (
      'A_Expr' in node &&
      node.A_Expr.kind === 'AEXPR_OP' &&
      ['+', '-', '*', '/'].includes(stringValue(node.A_Expr.name?.[0]) ?? '') &&
      [node.A_Expr.lexpr, node.A_Expr.rexpr].every((n) => n === undefined || scalar(n))
    );
  };
  return value !== undefined && scalar(value);
}

/**
 * The block's FROM list now, where it is one grouped subquery on whose group keys the block's
 * keys are: that subquery filtered to the touched keys as well. PostgreSQL does not push the
 * block's `IN (SELECT … FROM __pgt_x)` into the subquery (a condition with a subquery of its
 * own) and computed every group of it first (TPC-H Q18: a grouping of all of lineitem, 450 ms,
 * for two touched orders).
 */
function narrowed(op: Grouped, keys: Node[], touched: string[], sources: Sources): Node[] {
  const from = probedFrom(op, sources);
  const [item] = op.from;
  const node = from[0];
  if (op.from.length !== 1 || item?.kind !== 'subquery' || item.query.kind !== 'aggregate' || !node)
    return from;
  const inner = item.query;
  const innerKeys = groupKeys(inner.stmt, inner.groupBy);
  const pairs = keys.flatMap((k, j) => {
    const fields = 'ColumnRef' in k ? (k.ColumnRef.fields ?? []).map(stringValue) : [];
    const position =
      fields.length === 2 && fields[0] === item.alias ? subqueryColumn(item, fields[1] ?? '') : -1;
    const key = keyAt(inner, innerKeys, position);
    return key ? [{ key, touched: touched[j] as string }] : [];
  });
  if (pairs.length === 0 || !('RangeSubselect' in node)) return from;
  const sub = node.RangeSubselect;
  const stmt = selectOf(sub.subquery);
  if (!stmt) return from;
  const where = touchedGroups(
    pairs.map((p) => p.key),
    pairs.map((p) => p.touched),
    '__pgt_x __pgt_in',
    inner,
  );
  return [
    {
      RangeSubselect: {
        ...sub,
        subquery: { SelectStmt: { ...stmt, whereClause: and([stmt.whereClause, where]) } },
      },
    },
  ];
}
