// A grouped subquery joined by equalities on its output columns (the decorrelated subqueries of
// unnest.ts: `outer.x = s.key`) is, in a delta arm, read only for the keys its partners bring.
// As a plain subquery PostgreSQL computes every group before joining (it does not push a join
// key into a GROUP BY); made LATERAL with those equalities inside, the key is a parameter it
// pushes below the grouping, so each partner row aggregates its one group through an index.

import { unreachable } from '../../../shared/unreachable.js';
import type { FromItem, QueryOp } from '../analyze.js';
import {
  conjuncts,
  deparse,
  type Node,
  parseStatements,
  type SelectStmt,
  selectOf,
  stringValue,
  walk,
} from '../ast.js';
import { groupKeys, keyAt } from './aggregate.js';
import { outputNames, subqueryColumn } from './names.js';

/** For each FROM item that is a grouped subquery, the WHERE equalities that can probe it. */
export function probeQuals(items: FromItem[], where: Node | undefined): Map<number, Node[]> {
  const probes = new Map<number, Node[]>();
  const position = new Map<string, number>();
  items.forEach((item, i) => {
    for (const alias of aliasesOf(item)) position.set(alias, i);
  });
  for (const conjunct of conjuncts(where)) {
    const eq = equality(conjunct);
    if (!eq) continue;
    for (const [mine, other] of [eq, [eq[1], eq[0]] as const]) {
      const ref = columnRef(mine);
      const at = ref ? position.get(ref[0]) : undefined;
      const item = at === undefined ? undefined : items[at];
      // A scalar aggregate (no GROUP BY) is one row, computed once per statement (variants.ts):
      // probed, it would be computed again for every partner row (TPC-H Q15's max over revenue0,
      // 754 times, 0.6 s).
      if (
        !ref ||
        at === undefined ||
        item?.kind !== 'subquery' ||
        item.query.kind !== 'aggregate' ||
        item.query.groupBy.length === 0
      ) {
        continue;
      }
      const refs = [...walk(other)].filter(({ node }) => 'ColumnRef' in node);
      const reads = refs.flatMap(({ node }) => columnRef(node)?.[0] ?? []);
      // Only items before it may be named: LATERAL sees what precedes it in the FROM list.
      const before = (a: string) => (position.get(a) ?? Number.POSITIVE_INFINITY) < at;
      if (reads.length === 0 || reads.length !== refs.length || !reads.every(before)) continue;
      // The wrapper reads the subquery under its own output names.
      const column = subqueryColumn(item, ref[1]);
      const own = outputNames(item.query)[column];
      if (own === undefined || !tableColumn(item.query, column)) continue;
      const qual = `__pgt_q.${deparse({ ColumnRef: { fields: [{ String: { sval: own } }] } })} = ${deparse(other)}`;
      probes.set(at, [...(probes.get(at) ?? []), ...parsedWhere(qual)]);
      break;
    }
  }
  return probes;
}

/**
 * Whether output `position` of a block is a column of a table it reads (through subqueries in
 * FROM, and a group key where the block is grouped): a probe on it is pushed down to that table,
 * whose index can serve it. On an expression (Nexmark's windows, `window(date_time) = …`) it
 * would filter a whole scan per probe, which cost 42 s where the plain join took 0.4.
 */
function tableColumn(op: QueryOp, position: number): boolean {
  if (op.kind !== 'select' && op.kind !== 'aggregate') return false;
  const target = op.stmt.targetList?.[position];
  const value = target && 'ResTarget' in target ? target.ResTarget.val : undefined;
  if (!value || !('ColumnRef' in value)) return false;
  if (op.kind === 'aggregate' && !keyAt(op, groupKeys(op.stmt, op.groupBy), position)) return false;
  // The defining query qualifies every column by its relation's alias.
  const [alias, column, ...rest] = (value.ColumnRef.fields ?? []).map(stringValue);
  if (column === undefined || rest.length > 0) return false;
  const item = op.from
    .flatMap(itemsOf)
    .find((i) => i.kind !== 'constant' && i.kind !== 'join' && i.alias === alias);
  if (item?.kind === 'scan') return true;
  return item?.kind === 'subquery' && tableColumn(item.query, subqueryColumn(item, column));
}

function itemsOf(item: FromItem): FromItem[] {
  return item.kind === 'join' ? [...itemsOf(item.left), ...itemsOf(item.right)] : [item];
}

/** The subquery of a RangeSubselect wrapped to read only the probed groups, as LATERAL. */
export function probed(node: Node, quals: Node[]): Node {
  const sub = (node as { RangeSubselect: { subquery: Node; alias?: object } }).RangeSubselect;
  // OFFSET 0 keeps the wrapper a subquery of its own: pulled up, its WHERE would become a join
  // condition again and the groups would all be computed.
  const text = `SELECT * FROM (${deparse(sub.subquery)}) __pgt_q WHERE ${quals.map((q) => deparse(q)).join(' AND ')} OFFSET 0`;
  const stmt: SelectStmt | undefined = selectOf(parseStatements(text)[0]);
  if (!stmt) throw new Error('a probed subquery is not a SELECT');
  return { RangeSubselect: { ...sub, lateral: true, subquery: { SelectStmt: stmt } } };
}

function parsedWhere(sql: string): Node[] {
  const where = selectOf(parseStatements(`SELECT WHERE ${sql}`)[0])?.whereClause;
  return where ? [where] : [];
}

function aliasesOf(item: FromItem): string[] {
  switch (item.kind) {
    case 'scan':
    case 'subquery':
      return [item.alias];
    case 'join':
      return [...aliasesOf(item.left), ...aliasesOf(item.right)];
    case 'constant':
      return [];
    default:
      return unreachable(item);
  }
}

/** The two sides of `a = b`. */
export function equality(node: Node): readonly [Node, Node] | undefined {
  if (!('A_Expr' in node)) return undefined;
  const e = node.A_Expr;
  const op = e.name?.length === 1 ? stringValue(e.name[0]) : undefined;
  if (e.kind !== 'AEXPR_OP' || op !== '=' || !e.lexpr || !e.rexpr) return undefined;
  return [e.lexpr, e.rexpr];
}

/** A column reference `alias.column` as its two names. */
export function columnRef(node: unknown): [string, string] | undefined {
  const fields = (node as { ColumnRef?: { fields?: Node[] } }).ColumnRef?.fields;
  if (fields?.length !== 2) return undefined;
  const [a, c] = fields.map((f) => stringValue(f));
  return a && c ? [a, c] : undefined;
}
