// Delta rules for FROM items. A side is the item as it is now (`cur`) plus its delta variants:
// the same item with some captured relations replaced by their weighted changes. Joining two
// sides follows the bilinear rule Δ(A⋈B) = ΔA⋈B + A⋈ΔB − ΔA⋈ΔB, with A and B as they are now,
// which is exact for multisets and needs no reconstruction of the previous state. Outer joins
// add their antijoin part on top of it (outer-join.ts).
import { ident } from '../../../shared/pg/quote.js';
import { unreachable } from '../../../shared/unreachable.js';
import type { FromItem } from '../analyze.js';
import type { Node, SelectStmt } from '../ast.js';
import { type Arm, queryArms } from './arms.js';
import { allOf, changed, type Guard } from './guard.js';
import { outputNames } from './names.js';
import { outerJoinSide } from './outer-join.js';
import { deltaCte, type Sources } from './sources.js';

export interface Variant<T> {
  node: T;
  /** SQL expressions whose product, times sign, is the weight of a row of this variant. */
  factors: string[];
  sign: 1 | -1;
  /** Which sources must have changes for this variant to have rows. */
  guard: Guard;
}

export interface Side<T> {
  cur: T;
  deltas: Variant<T>[];
}

export function combine<A, B, C>(a: Side<A>, b: Side<B>, make: (x: A, y: B) => C): Side<C> {
  const both = a.deltas.flatMap((da) =>
    b.deltas.map(
      (db): Variant<C> => ({
        node: make(da.node, db.node),
        factors: [...da.factors, ...db.factors],
        sign: da.sign === db.sign ? -1 : 1,
        guard: allOf([da.guard, db.guard]),
      }),
    ),
  );
  return {
    cur: make(a.cur, b.cur),
    deltas: [
      ...a.deltas.map((da) => ({ ...da, node: make(da.node, b.cur) })),
      ...b.deltas.map((db) => ({ ...db, node: make(a.cur, db.node) })),
      ...both,
    ],
  };
}

export function fromListSide(items: FromItem[], sources: Sources): Side<Node[]> {
  return items.reduce<Side<Node[]>>(
    (acc, item) => combine(acc, fromItemSide(item, sources), (list, node) => [...list, node]),
    { cur: [], deltas: [] },
  );
}

export function fromItemSide(item: FromItem, sources: Sources): Side<Node> {
  switch (item.kind) {
    case 'scan': {
      const { index } = sources.use(item.relation);
      const alias = (item.node as { RangeVar: { alias?: object } }).RangeVar.alias;
      const node: Node = {
        RangeVar: {
          relname: deltaCte(index),
          inh: true,
          relpersistence: 'p',
          // Column aliases (FROM t a(x, y)) rename the change rows' columns exactly as the table's.
          alias: { ...alias, aliasname: item.alias },
        },
      };
      return {
        cur: item.node,
        deltas: [{ node, factors: [`${ident(item.alias)}.__pgt_w`], sign: 1, guard: changed(index) }],
      };
    }
    case 'constant':
      return { cur: item.node, deltas: [] };
    case 'join': {
      const left = fromItemSide(item.left, sources);
      const right = fromItemSide(item.right, sources);
      switch (item.type) {
        case 'inner': {
          const join = (item.node as { JoinExpr: object }).JoinExpr;
          return combine(left, right, (larg, rarg) => ({ JoinExpr: { ...join, larg, rarg } }));
        }
        case 'left':
        case 'right':
        case 'full':
          return outerJoinSide({ ...item, type: item.type }, left, right);
        default:
          return unreachable(item.type);
      }
    }
    case 'subquery': {
      const sub = (item.node as { RangeSubselect: { alias?: object } }).RangeSubselect;
      const names = outputNames(item.query);
      const arms: Arm[] = queryArms(item.query, sources, (_stmt: SelectStmt, targets: Node[]) =>
        renameTargets(targets, names),
      );
      return {
        cur: item.node,
        deltas: arms.map((arm) => ({
          node: { RangeSubselect: { ...sub, subquery: { SelectStmt: arm.stmt } } },
          factors: [`${ident(item.alias)}.__pgt_w`],
          sign: 1,
          guard: arm.guard,
        })),
      };
    }
    default:
      return unreachable(item);
  }
}

export function renameTargets(targets: Node[], names: string[]): Node[] {
  return targets.map((target, i) => {
    if (!('ResTarget' in target)) return target;
    const name = names[i];
    return name === undefined ? target : { ResTarget: { ...target.ResTarget, name } };
  });
}
