// Aggregates and DISTINCT on top of the query. Algebraic when every aggregate is COUNT, SUM or
// AVG of an expression whose type is exact (types.ts), MIN or MAX of one whose type is known:
// hidden state columns (__pgt_count, sums, non-null counts, extremes) absorb the weighted delta
// per group, and a group is rescanned only when a deleted value could have been its MIN or MAX.
// Anything else (HAVING, other aggregates, float sums, types not known for certain) recomputes
// just the groups the delta touches.
import { ident } from '../../../shared/pg/quote.js';
import { unreachable } from '../../../shared/unreachable.js';
import { type FromItem, functionName, isAggregateCall, type QueryOp } from '../analyze.js';
import { and, clone, deparse, expr, type Node, resTarget, type SelectStmt, stringValue } from '../ast.js';
import type { CompileFacts } from '../facts.js';
import { expressionType, sumType } from '../types.js';
import { type Arm, queryArms } from './arms.js';
import { ROW_ID, rowIdOf } from './multiset.js';
import type { Sources } from './sources.js';
import { type Apply, NOT_TRUNCATED } from './statement.js';
import { touchedGroups } from './touched.js';
import { fromListSide, renameTargets } from './variants.js';

export interface RootPlan {
  strategy: 'aggregate' | 'aggregate_recompute' | 'distinct' | 'partition_recompute';
  hiddenColumns: { name: string; type: string }[];
  /** The hidden columns the storage table is indexed on, to find a row's current version. */
  indexColumns: string[];
  fullSql: string;
  arms: Arm[];
  apply: Apply;
}

export interface RootContext {
  storage: string;
  columns: string[];
  sources: Sources;
  facts: CompileFacts;
}

export type AggKind = 'count_star' | 'count' | 'sum' | 'avg' | 'min' | 'max';

export interface Agg {
  kind: AggKind;
  arg: string;
  /** Type of the state column: numeric for sums, the argument's type for extremes. */
  stateType: string;
  /** Cast that gives a SUM its PostgreSQL result type. */
  sumType: string;
}

export class NotAlgebraic extends Error {}

// Parts of names and literals: never a group key or an aggregate on their own.
const LEAVES = ['String', 'Integer', 'Float', 'Boolean', 'BitString', 'TypeName', 'A_Star'];

export const keyName = (j: number) => `__pgt_k${j}`;
const argName = (i: number) => `__pgt_a${i}`;

export function aggregateRoot(op: Extract<QueryOp, { kind: 'aggregate' }>, ctx: RootContext): RootPlan {
  const keys = groupKeys(op.stmt, op.groupBy);
  try {
    return algebraic(op, keys, ctx);
  } catch (err) {
    if (!(err instanceof NotAlgebraic)) throw err;
    return recompute(op, keys, ctx);
  }
}

export function distinctRoot(op: Extract<QueryOp, { kind: 'distinct' }>, ctx: RootContext): RootPlan {
  const inputStmt = deparse({ SelectStmt: op.inputStmt });
  const keyNames = ctx.columns.map((_, j) => keyName(j));
  const arms = queryArms(op.input, ctx.sources, (_stmt, targets) => renameTargets(targets, keyNames));
  const finals = keyNames.map((k) => `n.${k}`);
  const cols = ctx.columns.map(ident);
  const q = cols.map((c) => `q.${c}`);
  return {
    strategy: 'distinct',
    indexColumns: [ROW_ID],
    hiddenColumns: [
      { name: ROW_ID, type: 'bigint' },
      { name: '__pgt_count', type: 'bigint' },
    ],
    fullSql: `INSERT INTO ${ctx.storage} (${[...cols, ROW_ID, '__pgt_count'].join(', ')})
      SELECT ${[...q, rowIdOf(q), 'count(*)'].join(', ')} FROM (${inputStmt}) q(${cols.join(', ')}) GROUP BY ${q.join(', ')}`,
    arms,
    apply: groupApply(ctx, keyNames.length, [], finals, false, () => ''),
  };
}

export function groupKeys(stmt: SelectStmt, groupBy: Node[]): Node[] {
  return groupBy.map((g) => {
    const position = 'A_Const' in g ? g.A_Const.ival?.ival : undefined;
    const target = position ? stmt.targetList?.[position - 1] : undefined;
    return target && 'ResTarget' in target && target.ResTarget.val ? target.ResTarget.val : g;
  });
}

/** The group key that output `position` of an aggregate block is, if it is one. */
export function keyAt(
  op: Extract<QueryOp, { kind: 'aggregate' }>,
  keys: Node[],
  position: number,
): Node | undefined {
  const target = op.stmt.targetList?.[position];
  const value = target && 'ResTarget' in target ? target.ResTarget.val : undefined;
  return value && keys.find((k) => deparse(k) === deparse(value));
}

function algebraic(op: Extract<QueryOp, { kind: 'aggregate' }>, keys: Node[], ctx: RootContext): RootPlan {
  if (op.stmt.havingClause) throw new NotAlgebraic();
  const keyTexts = keys.map((k) => deparse(k));
  const aggs: Agg[] = [];
  const aggIndex = new Map<string, number>();

  const replace = (node: Node): Node =>
    overStates(
      node,
      keyTexts,
      ctx.facts.aggregateNames,
      (j) => `n.${keyName(j)}`,
      (call) => {
        const text = deparse(call);
        let i = aggIndex.get(text);
        if (i === undefined) {
          i = aggs.push(classify(call, op.from)) - 1;
          aggIndex.set(text, i);
        }
        return finalize(aggs[i] as Agg, i);
      },
    );
  const finals = (op.stmt.targetList ?? []).map((t) => {
    if (!('ResTarget' in t) || !t.ResTarget.val) throw new NotAlgebraic();
    return deparse(replace(t.ResTarget.val));
  });

  const global = keys.length === 0;
  // count(*) has no argument; NULL keeps the numbering of the others.
  const input = inputBlock(op, [...keyTexts, ...aggs.map((a) => a.arg || 'NULL')]);
  const arms = queryArms(input, ctx.sources, (_stmt, targets) => targets);
  const states = aggs.flatMap((a, i) => stateColumns(a, i));
  const stmt = clone(op.stmt);
  const fullTargets = [
    ...(stmt.targetList ?? []),
    resTarget(expr(rowIdOf(keyTexts)), ROW_ID),
    resTarget(expr('count(*)'), '__pgt_count'),
    ...aggs.flatMap((a, i) => stateAggregates(a, i).map(([name, sql]) => resTarget(expr(sql), name))),
  ];
  const cols = ctx.columns.map(ident);
  return {
    strategy: 'aggregate',
    indexColumns: [ROW_ID],
    hiddenColumns: [{ name: ROW_ID, type: 'bigint' }, { name: '__pgt_count', type: 'bigint' }, ...states],
    fullSql: `INSERT INTO ${ctx.storage} (${[...cols, ROW_ID, '__pgt_count', ...states.map((s) => s.name)].join(', ')})
      ${deparse({ SelectStmt: { ...stmt, targetList: fullTargets } })}`,
    arms,
    apply: groupApply(ctx, keys.length, aggs, finals, global, (agg, i) => rescan(op, keys, agg, i, ctx)),
  };
}

function recompute(op: Extract<QueryOp, { kind: 'aggregate' }>, keys: Node[], ctx: RootContext): RootPlan {
  const keyTexts = keys.map((k) => deparse(k));
  const keyNames = keys.map((_, j) => keyName(j));
  const arms = queryArms(inputBlock(op, keyTexts), ctx.sources, (_stmt, targets) => targets);
  const cols = ctx.columns.map(ident);
  const { withClause: _w, sortClause: _s, ...block } = clone(op.stmt);
  const current = { ...block, fromClause: fromListSide(op.from, ctx.sources).cur };
  const global = keys.length === 0;
  const touched = global
    ? expr('EXISTS (SELECT 1 FROM __pgt_aff __pgt_a)')
    : touchedGroups(
        keys,
        keyNames.map((k) => `__pgt_a.${k}`),
        '__pgt_aff __pgt_a',
        op,
      );
  const refill = global
    ? `SELECT q.*, ${rowIdOf([])} FROM (${deparse({ SelectStmt: current })}) q WHERE ${deparse(touched)}`
    : deparse({
        SelectStmt: {
          ...current,
          whereClause: and([current.whereClause, touched]),
          targetList: [...(current.targetList ?? []), resTarget(expr(rowIdOf(keyTexts)), ROW_ID)],
        },
      });
  const stmt = clone(op.stmt);
  return {
    strategy: 'aggregate_recompute',
    indexColumns: [ROW_ID],
    hiddenColumns: [{ name: ROW_ID, type: 'bigint' }],
    fullSql: `INSERT INTO ${ctx.storage} (${[...cols, ROW_ID].join(', ')})
      ${deparse({ SelectStmt: { ...stmt, targetList: [...(stmt.targetList ?? []), resTarget(expr(rowIdOf(keyTexts)), ROW_ID)] } })}`,
    arms,
    apply: {
      ctes: [
        [
          '__pgt_aff',
          global
            ? `SELECT 1 AS __pgt_one FROM __pgt_delta d WHERE ${NOT_TRUNCATED} LIMIT 1`
            : `SELECT DISTINCT ${keyNames.map((k) => `d.${k}`).join(', ')} FROM __pgt_delta d WHERE ${NOT_TRUNCATED}`,
        ],
        [
          '__pgt_del',
          global
            ? `DELETE FROM ${ctx.storage} t WHERE EXISTS (SELECT 1 FROM __pgt_aff) RETURNING 1`
            : `DELETE FROM ${ctx.storage} t
                WHERE t.${ROW_ID} = ANY (ARRAY(SELECT ${rowIdOf(keyNames.map((k) => `a.${k}`))} FROM __pgt_aff a)) RETURNING 1`,
        ],
        ['__pgt_ins', `INSERT INTO ${ctx.storage} (${[...cols, ROW_ID].join(', ')}) ${refill} RETURNING 1`],
      ],
      inserted: '(SELECT count(*) FROM __pgt_ins)',
      deleted: '(SELECT count(*) FROM __pgt_del)',
    },
  };
}

/** The aggregate's input as a linear block: group keys and aggregate arguments, no grouping. */
function inputBlock(op: Extract<QueryOp, { kind: 'aggregate' }>, exprs: string[]): QueryOp {
  const keyCount = groupKeys(op.stmt, op.groupBy).length;
  const targetList = exprs.map((e, i) =>
    resTarget(expr(e), i < keyCount ? keyName(i) : argName(i - keyCount)),
  );
  const { groupClause: _g, havingClause: _h, ...rest } = op.stmt;
  return { kind: 'select', stmt: { ...rest, targetList }, from: op.from };
}

export function classify(node: Node, from: FromItem[]): Agg {
  const call = (node as { FuncCall: NonNullable<Extract<Node, { FuncCall: unknown }>['FuncCall']> }).FuncCall;
  const qualifier = call.funcname && call.funcname.length > 1 ? stringValue(call.funcname[0]) : 'pg_catalog';
  if (
    call.agg_filter ||
    call.agg_order?.length ||
    call.agg_distinct ||
    call.agg_within_group ||
    call.func_variadic ||
    // An aggregate of another schema is the user's, whatever its name: pg_get_viewdef qualifies it.
    qualifier !== 'pg_catalog'
  ) {
    throw new NotAlgebraic();
  }
  const name = functionName(call.funcname);
  if (name === 'count' && call.agg_star) return { kind: 'count_star', arg: '', stateType: '', sumType: '' };
  const arg = call.args?.length === 1 ? call.args[0] : undefined;
  if (!arg) throw new NotAlgebraic();
  const argText = deparse(arg);
  if (name === 'count') return { kind: 'count', arg: argText, stateType: '', sumType: '' };
  const type = expressionType(arg, from);
  if (!type) throw new NotAlgebraic();
  if (name === 'sum' || name === 'avg') {
    // A float sum depends on the order of its additions: absorbing deltas drifts from a recompute.
    if (type.kind !== 'exact') throw new NotAlgebraic();
    return { kind: name, arg: argText, stateType: 'numeric', sumType: sumType(type.base) };
  }
  if (name === 'min' || name === 'max')
    return { kind: name, arg: argText, stateType: type.name, sumType: '' };
  throw new NotAlgebraic();
}

function stateColumns(agg: Agg, i: number): { name: string; type: string }[] {
  switch (agg.kind) {
    case 'count_star':
      return [];
    case 'count':
      return [{ name: `__pgt_n${i}`, type: 'bigint' }];
    case 'sum':
    case 'avg':
      return [
        { name: `__pgt_s${i}`, type: 'numeric' },
        { name: `__pgt_n${i}`, type: 'bigint' },
      ];
    case 'min':
    case 'max':
      return [{ name: `__pgt_m${i}`, type: agg.stateType }];
    default: {
      const exhaustive: never = agg.kind;
      return exhaustive;
    }
  }
}

function stateAggregates(agg: Agg, i: number): [string, string][] {
  switch (agg.kind) {
    case 'count_star':
      return [];
    case 'count':
      return [[`__pgt_n${i}`, `count(${agg.arg})`]];
    case 'sum':
    case 'avg':
      return [
        [`__pgt_s${i}`, `sum(${agg.arg})::numeric`],
        [`__pgt_n${i}`, `count(${agg.arg})`],
      ];
    case 'min':
    case 'max':
      return [[`__pgt_m${i}`, `${agg.kind}(${agg.arg})`]];
    default: {
      const exhaustive: never = agg.kind;
      return exhaustive;
    }
  }
}

function finalize(agg: Agg, i: number): string {
  switch (agg.kind) {
    case 'count_star':
      return 'n.__pgt_count';
    case 'count':
      return `n.__pgt_n${i}`;
    case 'sum':
      // A numeric state keeps the widest scale of every value it absorbed, PostgreSQL's sum the
      // widest of the values there are now: equal as numbers, as I5 compares them, but printed
      // with more zeros. A division rounds to at least 16 significant digits and to the scale of
      // its inputs, so a quotient differs only when that extra scale goes beyond those digits.
      return `(CASE WHEN n.__pgt_n${i} > 0 THEN n.__pgt_s${i} END)::${agg.sumType}`;
    case 'avg':
      return `(CASE WHEN n.__pgt_n${i} > 0 THEN n.__pgt_s${i} / n.__pgt_n${i} END)`;
    case 'min':
    case 'max':
      return `n.__pgt_m${i}`;
    default: {
      const exhaustive: never = agg.kind;
      return exhaustive;
    }
  }
}

/** The extreme of one group evaluated now, for when a deleted value may have been it. */
function rescan(
  op: Extract<QueryOp, { kind: 'aggregate' }>,
  keys: Node[],
  agg: Agg,
  i: number,
  ctx: RootContext,
): string {
  const { withClause: _w, sortClause: _s, groupClause: _g, havingClause: _h, ...block } = clone(op.stmt);
  const matches = keys.map((k, j) => expr(`(${deparse(k)}) IS NOT DISTINCT FROM __pgt_grp.${keyName(j)}`));
  return deparse({
    SelectStmt: {
      ...block,
      fromClause: fromListSide(op.from, ctx.sources).cur,
      targetList: [resTarget(expr(`${agg.kind}(${agg.arg})`), `__pgt_v${i}`)],
      whereClause: and([block.whereClause, ...matches]),
    },
  });
}

function groupApply(
  ctx: RootContext,
  keyCount: number,
  aggs: Agg[],
  finals: string[],
  global: boolean,
  rescanOf: (agg: Agg, i: number) => string,
): Apply {
  const keys = Array.from({ length: keyCount }, (_, j) => keyName(j));
  const deltas: string[] = ['sum(d.__pgt_w) AS __pgt_dc'];
  const carried: string[] = [];
  const merged: string[] = ['coalesce(__pgt_grp.__pgt_oc, 0) + __pgt_grp.__pgt_dc AS __pgt_count'];
  const stateNames: string[] = [];
  for (const [i, agg] of aggs.entries()) {
    const a = `d.${argName(i)}`;
    const nonNull = `sum(d.__pgt_w) FILTER (WHERE ${a} IS NOT NULL) AS __pgt_dn${i}`;
    const mergeCount = `coalesce(__pgt_grp.__pgt_on${i}, 0) + coalesce(__pgt_grp.__pgt_dn${i}, 0) AS __pgt_n${i}`;
    switch (agg.kind) {
      case 'count_star':
        continue;
      case 'count':
        deltas.push(nonNull);
        carried.push(`t.__pgt_n${i} AS __pgt_on${i}`);
        merged.push(mergeCount);
        stateNames.push(`__pgt_n${i}`);
        continue;
      case 'sum':
      case 'avg':
        // Arms weigh every row +1 or −1: a sign instead of a numeric product of the two saved
        // about 7% of a 10,000-change aggregate delta. Any other weight is still multiplied. The
        // negation is numeric, as the product was: the smallest integer has no opposite.
        deltas.push(
          `sum(CASE d.__pgt_w WHEN 1 THEN ${a} WHEN -1 THEN -${a}::numeric ELSE d.__pgt_w::numeric * ${a} END) AS __pgt_ds${i}`,
          nonNull,
        );
        carried.push(`t.__pgt_s${i} AS __pgt_os${i}`, `t.__pgt_n${i} AS __pgt_on${i}`);
        merged.push(
          `coalesce(__pgt_grp.__pgt_os${i}, 0) + coalesce(__pgt_grp.__pgt_ds${i}, 0) AS __pgt_s${i}`,
          mergeCount,
        );
        stateNames.push(`__pgt_s${i}`, `__pgt_n${i}`);
        continue;
      case 'min':
      case 'max': {
        const beyond = agg.kind === 'min' ? '<=' : '>=';
        const pick = agg.kind === 'min' ? 'least' : 'greatest';
        deltas.push(
          `${agg.kind}(${a}) FILTER (WHERE d.__pgt_w > 0) AS __pgt_di${i}`,
          `${agg.kind}(${a}) FILTER (WHERE d.__pgt_w < 0) AS __pgt_dd${i}`,
        );
        carried.push(`t.__pgt_m${i} AS __pgt_om${i}`);
        merged.push(
          `CASE WHEN __pgt_grp.__pgt_dd${i} IS NOT NULL AND (__pgt_grp.__pgt_om${i} IS NULL OR __pgt_grp.__pgt_dd${i} ${beyond} __pgt_grp.__pgt_om${i})
                THEN (${rescanOf(agg, i)})
                ELSE ${pick}(__pgt_grp.__pgt_om${i}, __pgt_grp.__pgt_di${i}) END AS __pgt_m${i}`,
        );
        stateNames.push(`__pgt_m${i}`);
        continue;
      }
      default:
        unreachable(agg.kind);
    }
  }
  const d = keys.map((k) => `d.${k}`);
  const cols = ctx.columns.map(ident);
  const hidden = [ROW_ID, '__pgt_count', ...stateNames];
  const live = global ? 'true' : 'n.__pgt_count > 0';
  return {
    ctes: [
      [
        '__pgt_g',
        `SELECT ${[...d, `${rowIdOf(d)} AS ${ROW_ID}`, ...deltas].join(', ')} FROM __pgt_delta d WHERE ${NOT_TRUNCATED}
         ${global ? 'HAVING count(*) > 0' : `GROUP BY ${d.join(', ')}`}`,
      ],
      // Each group's current row is found once, by an index probe in row-id order, and then
      // updated or deleted through its TID: a second probe per group cost as much as the update.
      [
        '__pgt_m',
        `SELECT g.*, t.${ROW_ID} IS NOT NULL AS __pgt_found, t.__pgt_tid, ${['t.__pgt_count AS __pgt_oc', ...carried].join(', ')}
           FROM (SELECT * FROM __pgt_g o ORDER BY o.${ROW_ID}) g LEFT JOIN LATERAL (
             SELECT s.ctid AS __pgt_tid, s.* FROM ${ctx.storage} s WHERE s.${ROW_ID} = g.${ROW_ID} LIMIT 1) t ON true`,
      ],
      [
        '__pgt_n',
        `SELECT ${[...keys.map((k) => `__pgt_grp.${k}`), `__pgt_grp.${ROW_ID}`, '__pgt_grp.__pgt_found', '__pgt_grp.__pgt_tid', ...merged].join(', ')}
           FROM __pgt_m __pgt_grp`,
      ],
      [
        '__pgt_upd',
        `UPDATE ${ctx.storage} t SET ${[
          ...cols.map((c, j) => `${c} = ${finals[j]}`),
          ...hidden.slice(1).map((h) => `${h} = n.${h}`),
        ].join(', ')}
           FROM __pgt_n n WHERE t.ctid = n.__pgt_tid AND n.__pgt_found AND ${live}
            AND t.ctid = ANY (ARRAY(SELECT n.__pgt_tid FROM __pgt_n n WHERE n.__pgt_found AND ${live})) RETURNING 1`,
      ],
      [
        '__pgt_del',
        `DELETE FROM ${ctx.storage} t WHERE t.ctid = ANY (ARRAY(
           SELECT n.__pgt_tid FROM __pgt_n n WHERE n.__pgt_found AND ${global ? 'false' : 'n.__pgt_count = 0'})) RETURNING 1`,
      ],
      [
        '__pgt_ins',
        `INSERT INTO ${ctx.storage} (${[...cols, ...hidden].join(', ')})
         SELECT ${[...finals, ...hidden.map((h) => `n.${h}`)].join(', ')} FROM __pgt_n n
          WHERE NOT n.__pgt_found AND ${live} RETURNING 1`,
      ],
    ],
    inserted: '((SELECT count(*) FROM __pgt_ins) + (SELECT count(*) FROM __pgt_upd))',
    deleted: '((SELECT count(*) FROM __pgt_del) + (SELECT count(*) FROM __pgt_upd))',
  };
}

/**
 * An output or HAVING expression of an aggregate block written over per-group states: a group
 * key becomes `keyRef(j)`, an aggregate call what `aggregate` makes of it. A column read outside
 * both is not algebraic.
 */
export function overStates(
  node: Node,
  keyTexts: string[],
  aggregateNames: ReadonlySet<string>,
  keyRef: (j: number) => string,
  aggregate: (call: Node) => string,
): Node {
  const replace = (n: Node): Node => {
    if (LEAVES.some((leaf) => leaf in n)) return n;
    const key = keyTexts.indexOf(deparse(n));
    if (key >= 0) return expr(keyRef(key));
    if (isAggregateCall(n as Record<string, unknown>, aggregateNames)) return expr(aggregate(n));
    if ('ColumnRef' in n) throw new NotAlgebraic();
    return mapChildren(n, replace);
  };
  return replace(node);
}

export function mapChildren(node: Node, f: (n: Node) => Node): Node {
  const visit = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(visit);
    if (value === null || typeof value !== 'object') return value;
    const entries = Object.entries(value as Record<string, unknown>);
    // A node is an object with one capitalised key (its type); its children are nodes again.
    if (entries.length === 1 && /^[A-Z]/.test(entries[0]?.[0] ?? '')) return f(value as Node);
    return Object.fromEntries(entries.map(([k, v]) => [k, visit(v)]));
  };
  const [[type, body]] = Object.entries(node) as [[string, unknown]];
  return { [type]: visit(body) } as Node;
}
