// Delta arms of a linear query (projection, filter, inner joins, UNION ALL): each arm is the
// query block with one delta variant of its FROM list, a weight column, and a guard so that
// PostgreSQL skips the arm (a one-time filter) unless the sources it depends on have changes.
import type { QueryOp } from '../analyze.js';
import { and, clone, expr, type Node, resTarget, type SelectStmt } from '../ast.js';
import { UnsupportedConstruct } from '../errors.js';
import { groupedArms, groupedOld } from './grouped.js';
import { type Guard, guardSql } from './guard.js';
import type { Relevant } from './relevant.js';
import type { Sources } from './sources.js';
import { fromListSide, type Variant } from './variants.js';

export interface Arm {
  stmt: SelectStmt;
  guard: Guard;
}

/** Builds the target list of one arm from its block and the block's own targets. */
export type Targets = (stmt: SelectStmt, targets: Node[]) => Node[];

export function queryArms(op: QueryOp, sources: Sources, targets: Targets, relevant?: Relevant): Arm[] {
  switch (op.kind) {
    case 'select':
      return fromListSide(op.from, sources, op.stmt.whereClause).deltas.map((variant) =>
        arm(op.stmt, variant, targets),
      );
    case 'unionAll':
      return op.inputs.flatMap((input) => queryArms(input, sources, targets));
    case 'aggregate':
    case 'window':
      return groupedArms(op, sources, targets, relevant);
    case 'distinct':
      throw new UnsupportedConstruct('DISTINCT or UNION below the top of the query');
    default: {
      const exhaustive: never = op;
      return exhaustive;
    }
  }
}

/** The block over its FROM list as it was at the previous frontier, with a weight column. */
export function queryOld(
  op: QueryOp,
  sources: Sources,
  targets: Targets,
  relevant?: Relevant,
): (() => SelectStmt) | undefined {
  switch (op.kind) {
    case 'select': {
      const old = fromListSide(op.from, sources).old;
      return (
        old &&
        (() => {
          const { node, factors } = old();
          const { withClause: _w, sortClause: _s, ...block } = clone(op.stmt);
          const weight = factors.length > 0 ? factors.join(' * ') : '1';
          return {
            ...block,
            fromClause: node,
            targetList: [...targets(op.stmt, block.targetList ?? []), resTarget(expr(weight), '__pgt_w')],
          };
        })
      );
    }
    case 'unionAll': {
      const inputs = op.inputs.map((input) => queryOld(input, sources, targets));
      if (inputs.some((input) => input === undefined)) return undefined;
      return () =>
        inputs
          .map((input) => (input as () => SelectStmt)())
          .reduce((larg, rarg) => ({
            op: 'SETOP_UNION',
            all: true,
            larg,
            rarg,
          }));
    }
    case 'aggregate':
    case 'window':
      return groupedOld(op, sources, targets, relevant);
    case 'distinct':
      return undefined;
    default: {
      const exhaustive: never = op;
      return exhaustive;
    }
  }
}

function arm(stmt: SelectStmt, variant: Variant<Node[]>, targets: Targets): Arm {
  const { withClause: _w, sortClause: _s, ...block } = clone(stmt);
  const weight = [String(variant.sign), ...variant.factors].join(' * ');
  return {
    stmt: {
      ...block,
      fromClause: variant.node,
      targetList: [...targets(stmt, block.targetList ?? []), resTarget(expr(weight), '__pgt_w')],
      whereClause: and([block.whereClause, expr(guardSql(variant.guard))]),
    },
    guard: variant.guard,
  };
}
