// Delta rules for FROM items. A side is the item as it is now (`cur`), as it was at the previous
// frontier (`old`, a weighted relation, when the item can be rebuilt that way) and its delta
// variants: the same item with some captured relations replaced by their weighted changes.
// Joining two sides telescopes, Δ(A⋈B) = ΔA⋈B_old + A_now⋈ΔB, so a join of n relations has n
// variants rather than the 2^n − 1 of the bilinear rule, whose arms PostgreSQL must each plan.
// Without an old state of either side (outer joins) the bilinear rule
// ΔA⋈B + A⋈ΔB − ΔA⋈ΔB on the current states is used. Outer joins add their antijoin part on top
// of it (outer-join.ts).
import { ident } from '../../../shared/pg/quote.js';
import { unreachable } from '../../../shared/unreachable.js';
import type { FromItem } from '../analyze.js';
import type { Node, SelectStmt } from '../ast.js';
import { type Arm, queryArms, queryOld } from './arms.js';
import { allOf, changed, type Guard } from './guard.js';
import { outputNames } from './names.js';
import { outerJoinSide } from './outer-join.js';
import { deltaCte, oldCte, type Sources } from './sources.js';

export interface Variant<T> {
  node: T;
  /** SQL expressions whose product, times sign, is the weight of a row of this variant. */
  factors: string[];
  sign: 1 | -1;
  /** Which sources must have changes for this variant to have rows. */
  guard: Guard;
}

/** A relation whose rows carry weights: the product of `factors` is each row's multiplicity. */
export interface Weighted<T> {
  node: T;
  factors: string[];
}

export interface Side<T> {
  cur: T;
  /** Built on demand, so that a previous state nobody joins is not defined in the statement. */
  old: (() => Weighted<T>) | undefined;
  deltas: Variant<T>[];
}

export function combine<A, B, C>(a: Side<A>, b: Side<B>, make: (x: A, y: B) => C): Side<C> {
  const pair = (x: Weighted<A>, y: Weighted<B>): Weighted<C> => ({
    node: make(x.node, y.node),
    factors: [...x.factors, ...y.factors],
  });
  const aNow: Weighted<A> = { node: a.cur, factors: [] };
  const bNow: Weighted<B> = { node: b.cur, factors: [] };
  const { old: aOld } = a;
  const { old: bOld } = b;
  const cur = make(a.cur, b.cur);
  const old = aOld && bOld ? () => pair(aOld(), bOld()) : undefined;
  if (aOld || bOld) {
    // ΔA⋈B_old + A_now⋈ΔB, or symmetrically ΔA⋈B_now + A_old⋈ΔB when only A has an old state.
    const bThen = bOld && a.deltas.length > 0 ? bOld() : bNow;
    const aThen = !bOld && aOld && b.deltas.length > 0 ? aOld() : aNow;
    return {
      cur,
      old,
      deltas: [
        ...a.deltas.map((da) => ({ ...da, ...pair(da, bThen) })),
        ...b.deltas.map((db) => ({ ...db, ...pair(aThen, db) })),
      ],
    };
  }
  const both = a.deltas.flatMap((da) =>
    b.deltas.map(
      (db): Variant<C> => ({
        ...pair(da, db),
        sign: da.sign === db.sign ? -1 : 1,
        guard: allOf([da.guard, db.guard]),
      }),
    ),
  );
  return {
    cur,
    old,
    deltas: [
      ...a.deltas.map((da) => ({ ...da, ...pair(da, bNow) })),
      ...b.deltas.map((db) => ({ ...db, ...pair(aNow, db) })),
      ...both,
    ],
  };
}

export function fromListSide(items: FromItem[], sources: Sources): Side<Node[]> {
  return items.reduce<Side<Node[]>>(
    (acc, item) => combine(acc, fromItemSide(item, sources), (list, node) => [...list, node]),
    { cur: [], old: () => ({ node: [], factors: [] }), deltas: [] },
  );
}

export function fromItemSide(item: FromItem, sources: Sources): Side<Node> {
  switch (item.kind) {
    case 'scan': {
      const { index } = sources.use(item.relation);
      const alias = (item.node as { RangeVar: { alias?: object } }).RangeVar.alias;
      // Column aliases (FROM t a(x, y)) rename the CTE's columns exactly as the table's.
      const cte = (relname: string): Node => ({
        RangeVar: { relname, inh: true, relpersistence: 'p', alias: { ...alias, aliasname: item.alias } },
      });
      const factors = [`${ident(item.alias)}.__pgt_w`];
      return {
        cur: item.node,
        old: () => ({ node: cte(oldCte(sources.useOld(item.relation).index)), factors }),
        deltas: [{ node: cte(deltaCte(index)), factors, sign: 1, guard: changed(index) }],
      };
    }
    case 'constant':
      return { cur: item.node, old: () => ({ node: item.node, factors: [] }), deltas: [] };
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
      const rename = (_stmt: SelectStmt, targets: Node[]) => renameTargets(targets, names);
      const arms: Arm[] = queryArms(item.query, sources, rename);
      const old = queryOld(item.query, sources, rename);
      const factors = [`${ident(item.alias)}.__pgt_w`];
      return {
        cur: item.node,
        old:
          old && (() => ({ node: { RangeSubselect: { ...sub, subquery: { SelectStmt: old() } } }, factors })),
        deltas: arms.map((arm) => ({
          node: { RangeSubselect: { ...sub, subquery: { SelectStmt: arm.stmt } } },
          factors,
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
