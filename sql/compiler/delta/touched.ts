// Which input rows belong to the groups a delta touches, for the roots and subqueries that
// recompute those groups. A semi-join on keys that cannot be NULL lets PostgreSQL start from the
// touched groups and probe the input's indexes; a NULL key forms a group too, which only
// IS NOT DISTINCT FROM finds, tested only on rows with a NULL key.
import { unreachable } from '../../../shared/unreachable.js';
import type { FromItem, JoinType } from '../analyze.js';
import { and, deparse, expr, type Node, walk } from '../ast.js';
import type { RelationFacts } from '../facts.js';
import type { Grouped } from './grouped.js';

/**
 * The condition on the input of `op` that its group keys are among the touched ones: `touched`
 * are the key columns of `source` (a FROM item of touched keys), in the order of `keys`.
 */
export function touchedGroups(keys: Node[], touched: string[], source: string, op: Grouped): Node {
  const texts = keys.map((k) => `(${deparse(k)})`);
  const list = (items: string[]) => (items.length === 1 ? items[0] : `(${items.join(', ')})`);
  const all = `${list(texts)} IN (SELECT ${touched.join(', ')} FROM ${source})`;
  const safe = keys.flatMap((k, i) => (nonNull(k, op) ? [i] : []));
  // PostgreSQL has no statistics on a CTE's columns: it takes a semi-join on one to keep 1 row in
  // 200 of the other side, and reads a large table whole where a few keys are touched (TPC-H
  // Q17: 12 parts, all 600,000 lineitems, 59 ms). An array of them it takes as 10 keys, and
  // reads an index leading with the key: the same rows, for a key that cannot be NULL. Only for
  // one key: beside a semi-join on several, the array became a condition of each of its index
  // probes, every key of the array looked up again per probe (Q20: 2,223 probes, 0.6 s).
  if (keys.length === 1 && safe.length === 1 && indexed(keys[0] as Node, op)) {
    return expr(`${texts[0]} = ANY (ARRAY(SELECT DISTINCT ${touched[0]} FROM ${source}))`);
  }
  if (safe.length === keys.length) return expr(all);
  const nullable = texts.filter((_, i) => !safe.includes(i));
  const same = texts.map((t, i) => `${t} IS NOT DISTINCT FROM ${touched[i]}`);
  const any = expr(`(${all} OR ((${nullable.map((t) => `${t} IS NULL`).join(' OR ')})
    AND EXISTS (SELECT FROM ${source} WHERE ${same.join(' AND ')})))`);
  // Implied by the test above, and a plain semi-join that can drive an index scan.
  const prefix =
    safe.length > 0
      ? expr(
          `${list(safe.map((i) => texts[i] as string))} IN (SELECT ${safe.map((i) => touched[i]).join(', ')} FROM ${source})`,
        )
      : undefined;
  return and([prefix, any]) as Node;
}

/** Whether a key is a column of a table read in the block that leads one of its btree indexes. */
function indexed(k: Node, op: Grouped): boolean {
  const found = scanColumn(k, op, () => true);
  return found?.relation.indexed?.includes(found.column) ?? false;
}

/** A group key filtered IS NOT NULL, or a primary key column of a relation no outer join null-extends. */
function nonNull(k: Node, op: Grouped): boolean {
  const text = deparse(k);
  for (const { node } of walk(op.stmt.whereClause)) {
    const test = (node as { NullTest?: { arg?: Node; nulltesttype?: string } }).NullTest;
    if (test?.nulltesttype === 'IS_NOT_NULL' && test.arg && deparse(test.arg) === text) {
      if (isConjunct(op.stmt.whereClause, node as Node)) return true;
    }
  }
  // An inner join keeps both sides' rows as they are; a left join its left, a right its right.
  const kept = (type: JoinType, side: 'left' | 'right') => type === 'inner' || type === side;
  const found = scanColumn(k, op, kept);
  return found?.relation.key?.includes(found.column) ?? false;
}

/**
 * The table and column a key `alias.column` names in the block's FROM list, looking into the
 * sides of joins that `through` lets through.
 */
function scanColumn(
  k: Node,
  op: Grouped,
  through: (type: JoinType, side: 'left' | 'right') => boolean,
): { relation: RelationFacts; column: string } | undefined {
  const fields = 'ColumnRef' in k ? (k.ColumnRef.fields ?? []) : [];
  const [alias, column] = fields.map((f) => ('String' in f ? f.String.sval : undefined));
  if (fields.length !== 2 || !alias || !column) return undefined;
  const visit = (item: FromItem): RelationFacts | undefined => {
    switch (item.kind) {
      case 'scan':
        return item.alias === alias ? item.relation : undefined;
      case 'join':
        return (
          (through(item.type, 'left') ? visit(item.left) : undefined) ??
          (through(item.type, 'right') ? visit(item.right) : undefined)
        );
      case 'subquery':
      case 'constant':
        return undefined;
      default:
        return unreachable(item);
    }
  };
  for (const item of op.from) {
    const relation = visit(item);
    if (relation) return { relation, column };
  }
  return undefined;
}

function isConjunct(where: Node | undefined, node: Node): boolean {
  if (!where) return false;
  if (where === node) return true;
  return 'BoolExpr' in where && where.BoolExpr.boolop === 'AND_EXPR'
    ? (where.BoolExpr.args ?? []).some((a) => isConjunct(a, node))
    : false;
}
