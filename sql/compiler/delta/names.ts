// The column names a query block produces, derived the way PostgreSQL derives them when a
// target has no AS (FigureColname), so that renamed delta arms line up with outer references.
import type { FromItem, QueryOp } from '../analyze.js';
import type { Node } from '../ast.js';
import { aliasRenamed, stringValue } from '../ast.js';

export function outputNames(op: QueryOp): string[] {
  switch (op.kind) {
    case 'select':
    case 'aggregate':
    case 'window':
      return (op.stmt.targetList ?? []).map(targetName);
    case 'distinct':
      return outputNames(op.input);
    case 'unionAll':
      return op.inputs[0] ? outputNames(op.inputs[0]) : [];
    default: {
      const exhaustive: never = op;
      return exhaustive;
    }
  }
}

/**
 * Which output of a subquery in FROM a reference `alias.name` reads, or −1: by the names its
 * column aliases give (`AS s(a, b)` renames by position), not the subquery's own, which they
 * may swap.
 */
export function subqueryColumn(item: Extract<FromItem, { kind: 'subquery' }>, name: string): number {
  return aliasRenamed(item.node, outputNames(item.query)).indexOf(name);
}

export function targetName(target: Node): string {
  if (!('ResTarget' in target)) return '?column?';
  return target.ResTarget.name ?? figure(target.ResTarget.val) ?? '?column?';
}

/** PostgreSQL's own name for an unnamed output column, where it is one this compiler can tell. */
export function figure(node: Node | undefined): string | undefined {
  if (!node) return undefined;
  if ('ColumnRef' in node) return stringValue(node.ColumnRef.fields?.at(-1));
  if ('FuncCall' in node) return stringValue(node.FuncCall.funcname?.at(-1));
  if ('TypeCast' in node) {
    return figure(node.TypeCast.arg) ?? stringValue(node.TypeCast.typeName?.names?.at(-1));
  }
  if ('CaseExpr' in node) return 'case';
  if ('CoalesceExpr' in node) return 'coalesce';
  if ('MinMaxExpr' in node) return node.MinMaxExpr.op === 'IS_GREATEST' ? 'greatest' : 'least';
  if ('NullIfExpr' in node) return 'nullif';
  return undefined;
}
