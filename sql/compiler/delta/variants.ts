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
import type { FromItem, QueryOp } from '../analyze.js';
import { cteRef, deparse, type Node, type SelectStmt } from '../ast.js';
import { type Arm, queryArms, queryOld } from './arms.js';
import { sharedFrom } from './grouped.js';
import { allOf, changed, type Guard } from './guard.js';
import { outputNames } from './names.js';
import { outerJoinSide } from './outer-join.js';
import { probed, probeQuals } from './probe.js';
import { type Relevant, relevantKeys } from './relevant.js';
import { deltaCte, oldCte, type Sources, undoneCte } from './sources.js';

export interface Variant<T> {
  node: T;
  /** SQL expressions whose product, times sign, is the weight of a row of this variant. */
  factors: string[];
  sign: 1 | -1;
  /** Which sources must have changes for this variant to have rows. */
  guard: Guard;
  /** How many previous states this variant joins as oldTerms: each doubles the arms to plan. */
  splits?: number;
}

/** A relation whose rows carry weights: the product of `factors` is each row's multiplicity. */
export interface Weighted<T> {
  node: T;
  factors: string[];
}

/** A part of a previous state: its rows exist only when `guard` holds. */
export interface Term<T> extends Weighted<T> {
  guard?: Guard;
}

export interface Side<T> {
  cur: T;
  /** Built on demand, so that a previous state nobody joins is not defined in the statement. */
  old: (() => Weighted<T>) | undefined;
  /**
   * The previous state as a sum of terms, for a large relation: the relation now, which a join
   * can probe by index and whose statistics PostgreSQL knows, plus its undone changes. As one
   * union (`old`) it could only be scanned whole, with every estimate above it a guess.
   */
  oldTerms?: () => Term<T>[];
  /**
   * The item as it is now and as it was, for joining to a delta: read only where the items
   * before it that probe it (probe.ts) bring keys.
   */
  probe?: T;
  /**
   * The item now with the grouped subqueries inside it probed by the rest of it (a join whose
   * right side reads its left one): the probes need no other item, so every arm that reads the
   * item now reads it so. A probe by another FROM item is worth it only where that item is a
   * delta; by a whole table (Q15's suppliers) it costs a probe per row of it.
   */
  selfProbe?: T;
  oldProbe?: () => Weighted<T>;
  deltas: Variant<T>[];
}

/**
 * Relations of at least this many rows are joined in their previous state as oldTerms… (TPC-H
 * SF 0.1, 1%: Q9 9 s → 0.8 s once `part`, 20,000 rows, is split, whose union PostgreSQL rescanned
 * per row of an underestimated outer side; Q8, eight relations, 0.3 s → 1.2 s with the extra arms)
 */
export const SPLIT_ROWS = 10_000;
/** …by at most this many per arm, the largest first: each doubles the arms to plan and run. */
const MAX_SPLITS = 3;

/**
 * Joins two sides. With `oldOn` 'left', the telescoping is turned around (ΔA⋈B_now + A_old⋈ΔB):
 * a previous state is a union that PostgreSQL can only scan whole, so it should be the smaller side's.
 */
export function combine<A, B, C>(
  a: Side<A>,
  b: Side<B>,
  make: (x: A, y: B) => C,
  oldOn: 'left' | 'right' = 'right',
): Side<C> {
  const pair = (x: Weighted<A>, y: Weighted<B>): Weighted<C> => ({
    node: make(x.node, y.node),
    factors: [...x.factors, ...y.factors],
  });
  const aNow: Weighted<A> = { node: a.probe ?? a.selfProbe ?? a.cur, factors: [] };
  const bNow: Weighted<B> = { node: b.probe ?? b.selfProbe ?? b.cur, factors: [] };
  const { old: aOld } = a;
  const { old: bOld } = b;
  const cur = make(a.cur, b.cur);
  const inner =
    a.selfProbe || b.selfProbe ? { selfProbe: make(a.selfProbe ?? a.cur, b.selfProbe ?? b.cur) } : {};
  const old = aOld && bOld ? () => pair(aOld(), bOld()) : undefined;
  if (aOld || bOld) {
    // ΔA⋈B_old + A_now⋈ΔB, or symmetrically ΔA⋈B_now + A_old⋈ΔB when only A has an old state.
    const leftOld = oldOn === 'left' ? Boolean(aOld) && b.deltas.length > 0 : !bOld;
    // A delta joined to the other side's terms: one variant per term, each under both guards.
    const across = <X>(
      v: Variant<unknown>,
      side: Side<X>,
      now: Weighted<X>,
      then: boolean,
      node: (t: Term<X>) => Weighted<C>,
    ): Variant<C>[] => {
      const terms: Term<X>[] = then ? previous(side, now, (v.splits ?? 0) < MAX_SPLITS) : [now];
      const splits = (v.splits ?? 0) + (terms.length > 1 ? 1 : 0);
      return terms.map((t) => ({
        ...v,
        ...node(t),
        guard: t.guard ? allOf([v.guard, t.guard]) : v.guard,
        splits,
      }));
    };
    return {
      cur,
      ...inner,
      old,
      deltas: [
        ...a.deltas.flatMap((da) => across(da, b, bNow, !leftOld, (t) => pair(da, t))),
        ...b.deltas.flatMap((db) => across(db, a, aNow, leftOld, (t) => pair(t, db))),
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
    ...inner,
    old,
    deltas: [
      ...a.deltas.map((da) => ({ ...da, ...pair(da, bNow) })),
      ...b.deltas.map((db) => ({ ...db, ...pair(aNow, db) })),
      ...both,
    ],
  };
}

function previous<T>(side: Side<T>, now: Weighted<T>, split: boolean): Term<T>[] {
  if (side.oldProbe) return [side.oldProbe()];
  if (split && side.oldTerms) return side.oldTerms();
  return side.old ? [side.old()] : [now];
}

/**
 * The items are telescoped largest first, so that each is read as it was only in the arms of
 * larger ones; the FROM list keeps its order (a `*` or a LATERAL item depends on it).
 */
export function fromListSide(items: FromItem[], sources: Sources, where?: Node): Side<Node[]> {
  const order = items.map((item, i) => ({ i, rows: itemRows(item) })).sort((x, y) => y.rows - x.rows);
  const probes = probeQuals(items, where);
  const relevant = relevantKeys(items, where, sources);
  const sides = new Map(
    order.map(({ i }) => [i, fromItemSide(items[i] as FromItem, sources, probes.get(i), relevant.get(i))]),
  );
  const side = order.reduce<Side<[number, Node][]>>(
    (acc, { i }) =>
      combine(acc, sides.get(i) as Side<Node>, (list, node): [number, Node][] => [...list, [i, node]]),
    { cur: [], old: () => ({ node: [], factors: [] }), deltas: [] },
  );
  const inOrder = (list: [number, Node][]) => [...list].sort((x, y) => x[0] - y[0]).map(([, node]) => node);
  const { old } = side;
  const probed = items.map((_, i) => {
    const s = sides.get(i) as Side<Node>;
    return s.probe ?? s.selfProbe ?? s.cur;
  });
  return {
    cur: inOrder(side.cur),
    // The list now with every probe, for a grouped block that reads its own groups: there the
    // items its subqueries are probed by are read only for the touched groups or probed keys.
    ...(probed.some((node, i) => node !== sides.get(i)?.cur) ? { probe: probed } : {}),
    old:
      old &&
      (() => {
        const w = old();
        return { ...w, node: inOrder(w.node) };
      }),
    deltas: side.deltas.map((d) => ({ ...d, node: inOrder(d.node) })),
  };
}

/** The rows an item reads at most, by the last ANALYZE of its relations: 0 when unknown. */
function itemRows(item: FromItem): number {
  switch (item.kind) {
    case 'scan':
      return item.relation.rows ?? 0;
    case 'join':
      return Math.max(itemRows(item.left), itemRows(item.right));
    case 'subquery':
    case 'constant':
      return 0;
    default:
      return unreachable(item);
  }
}

export function fromItemSide(
  item: FromItem,
  sources: Sources,
  probedBy?: Node[],
  relevant?: Relevant,
): Side<Node> {
  switch (item.kind) {
    case 'scan': {
      const { index } = sources.use(item.relation);
      const alias = (item.node as { RangeVar: { alias?: object } }).RangeVar.alias;
      // The CTE takes the table's alias (analyze refuses column aliases on a table).
      const cte = (relname: string): Node => cteRef(relname, alias, item.alias);
      const factors = [`${ident(item.alias)}.__pgt_w`];
      const large = (item.relation.rows ?? 0) >= SPLIT_ROWS;
      return {
        cur: item.node,
        old: () => ({ node: cte(oldCte(sources.useOld(item.relation).index)), factors }),
        ...(large
          ? {
              oldTerms: () => [
                { node: item.node, factors: [] },
                { node: cte(undoneCte(sources.useOld(item.relation).index)), factors, guard: changed(index) },
              ],
            }
          : {}),
        deltas: [{ node: cte(deltaCte(index)), factors, sign: 1, guard: changed(index) }],
      };
    }
    case 'constant':
      return { cur: item.node, old: () => ({ node: item.node, factors: [] }), deltas: [] };
    case 'join': {
      const join = (item.node as { JoinExpr: { quals?: Node } }).JoinExpr;
      // The right side of an inner or left join may read the left one (LATERAL), so a grouped
      // subquery there is probed by its ON equalities, as one in a FROM list is by WHERE
      // (TPC-H Q21's NOT EXISTS, a left join to the keys of all of lineitem).
      const probes =
        item.type === 'inner' || item.type === 'left'
          ? probeQuals([item.left, item.right], join.quals).get(1)
          : undefined;
      const left = fromItemSide(item.left, sources);
      const right = fromItemSide(item.right, sources, probes);
      const selfProbe =
        left.selfProbe || right.probe || right.selfProbe
          ? {
              JoinExpr: {
                ...join,
                larg: left.selfProbe ?? left.cur,
                rarg: right.probe ?? right.selfProbe ?? right.cur,
              },
            }
          : undefined;
      switch (item.type) {
        case 'inner': {
          const oldOn = itemRows(item.left) < itemRows(item.right) ? 'left' : 'right';
          const side = combine(left, right, (larg, rarg) => ({ JoinExpr: { ...join, larg, rarg } }), oldOn);
          return selfProbe ? { ...side, selfProbe } : side;
        }
        case 'left':
        case 'right':
        case 'full': {
          const side = outerJoinSide({ ...item, type: item.type }, left, right, sources);
          return selfProbe ? { ...side, selfProbe } : side;
        }
        default:
          return unreachable(item.type);
      }
    }
    case 'subquery': {
      const sub = (item.node as { RangeSubselect: { alias?: object } }).RangeSubselect;
      const names = outputNames(item.query);
      const rename = (_stmt: SelectStmt, targets: Node[]) => renameTargets(targets, names);
      const arms: Arm[] = queryArms(item.query, sources, rename, relevant);
      const old = queryOld(item.query, sources, rename, relevant);
      const factors = [`${ident(item.alias)}.__pgt_w`];
      // A scalar aggregate (no GROUP BY) is one row that costs a scan of its input, and
      // PostgreSQL computes it again each time the inner side of a nested loop is rescanned
      // (TPC-H Q22: 238 times, 1.2 s). Now and before, it is computed once per statement.
      const once = item.query.kind === 'aggregate' && item.query.groupBy.length === 0 && !probedBy?.length;
      const oldNode = (stmt: SelectStmt): Node =>
        once
          ? shared(sources.derived(deparse({ SelectStmt: stmt })))
          : { RangeSubselect: { ...sub, subquery: { SelectStmt: stmt } } };
      const shared = (cte: string): Node => cteRef(cte, sub.alias, item.alias);
      const subquery = (sub as { subquery?: Node }).subquery;
      return {
        cur:
          once && subquery
            ? shared(sources.derived(deparse(onceNow(item.query, subquery, sources))))
            : item.node,
        old: old && (() => ({ node: oldNode(old()), factors })),
        ...(probedBy?.length
          ? {
              probe: probed(item.node, probedBy),
              ...(old ? { oldProbe: () => ({ node: probed(oldNode(old()), probedBy), factors }) } : {}),
            }
          : {}),
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

/** A scalar aggregate's query as it is now, its subqueries shared with its delta (sharedFrom). */
function onceNow(op: QueryOp, subquery: Node, sources: Sources): Node {
  const from = op.kind === 'aggregate' ? sharedFrom(op, sources) : undefined;
  if (!from || op.kind !== 'aggregate') return subquery;
  const { withClause: _w, ...stmt } = op.stmt;
  return { SelectStmt: { ...stmt, fromClause: from } };
}

export function renameTargets(targets: Node[], names: string[]): Node[] {
  return targets.map((target, i) => {
    if (!('ResTarget' in target)) return target;
    const name = names[i];
    return name === undefined ? target : { ResTarget: { ...target.ResTarget, name } };
  });
}
