// The previous state of a grouped subquery's touched groups, computed from aggregate states
// rather than from rows. grouped.ts rebuilds the input rows as they were (now minus the changes,
// netted per distinct row and expanded again) and aggregates those; when every aggregate is
// COUNT, SUM or AVG of an exact type, each group's previous value is its value now minus what the
// changes added, so only two small aggregations are needed: the touched groups' rows now, and the
// changes, per group. (TPC-H Q13 at SF 0.1: the netting and expansion took 190 of 670 ms.)
import { ident } from '../../../shared/pg/quote.js';
import { deparse, type Node } from '../ast.js';
import { classify, keyName, NotAlgebraic, overStates } from './aggregate.js';
import type { Grouped } from './grouped.js';

/**
 * The block's rows for the touched groups as they were, each weighted −1, or undefined when an
 * aggregate is not algebraic. `now` and `changes` name relations over the block's input columns
 * (aliased __pgt_in by `overInput`), the latter with a weight __pgt_w.
 */
export function algebraicBefore(
  op: Extract<Grouped, { kind: 'aggregate' }>,
  keys: Node[],
  names: string[],
  overInput: (node: Node) => Node,
  aggregates: ReadonlySet<string>,
  relations: { now: string; changes: string },
): string | undefined {
  if (keys.length === 0) return undefined;
  const keyTexts = keys.map((k) => deparse(k));
  const states: { count: string; sum?: string; arg: string }[] = [];
  const finals: string[] = [];
  const replace = (node: Node): Node =>
    overStates(
      node,
      keyTexts,
      aggregates,
      (j) => `__pgt_b.${keyName(j)}`,
      (call) => {
        const agg = classify(call, op.from);
        const i = states.length;
        const count = `__pgt_bc${i}`;
        const sum = `__pgt_bs${i}`;
        const arg = () =>
          deparse(overInput((call as { FuncCall: { args?: Node[] } }).FuncCall.args?.[0] as Node));
        switch (agg.kind) {
          case 'count_star':
            return '__pgt_b.__pgt_n';
          case 'count':
            states.push({ count, arg: arg() });
            // A group whose changes hold no value of the argument has no share of it: NULL, not 0.
            return `coalesce(__pgt_b.${count}, 0)`;
          case 'sum':
            states.push({ count, sum, arg: arg() });
            return `(CASE WHEN __pgt_b.${count} > 0 THEN __pgt_b.${sum} END)::${agg.sumType}`;
          case 'avg':
            states.push({ count, sum, arg: arg() });
            return `(CASE WHEN __pgt_b.${count} > 0 THEN __pgt_b.${sum} / __pgt_b.${count} END)`;
          case 'min':
          case 'max':
            throw new NotAlgebraic();
          default: {
            const exhaustive: never = agg.kind;
            return exhaustive;
          }
        }
      },
    );
  let having: string | undefined;
  try {
    for (const [i, t] of (op.stmt.targetList ?? []).entries()) {
      const val = 'ResTarget' in t ? t.ResTarget.val : undefined;
      if (!val) return undefined;
      finals.push(`${deparse(replace(val))} AS ${ident(names[i] ?? '')}`);
    }
    having = op.stmt.havingClause && deparse(replace(op.stmt.havingClause));
  } catch (err) {
    if (err instanceof NotAlgebraic) return undefined;
    throw err;
  }
  const grouped = keys.map((k) => deparse(overInput(k)));
  // Each relation's share per group, in the same columns; the changes count against it.
  const partial = (relation: string, weight: string) =>
    `SELECT ${[
      ...grouped.map((g, j) => `${g} AS ${keyName(j)}`),
      `sum(${weight}) AS __pgt_n`,
      ...states.flatMap((s) => [
        `sum(${weight}) FILTER (WHERE ${s.arg} IS NOT NULL) AS ${s.count}`,
        ...(s.sum ? [`sum(${weight} * (${s.arg})::numeric) AS ${s.sum}`] : []),
      ]),
    ].join(', ')} FROM ${relation} __pgt_in GROUP BY ${grouped.join(', ')}`;
  const keyCols = keys.map((_, j) => keyName(j));
  // Sums of bigint counts are numeric: cast back, so that a count compares and hashes as before.
  const combined = `SELECT ${[
    ...keyCols.map((k) => `__pgt_p.${k}`),
    'sum(__pgt_p.__pgt_n)::bigint AS __pgt_n',
    ...states.flatMap((s) => [
      `sum(__pgt_p.${s.count})::bigint AS ${s.count}`,
      ...(s.sum ? [`sum(__pgt_p.${s.sum}) AS ${s.sum}`] : []),
    ]),
  ].join(', ')}
    FROM (${partial(relations.now, '1')} UNION ALL ${partial(relations.changes, '-__pgt_in.__pgt_w')}) __pgt_p
   GROUP BY ${keyCols.map((k) => `__pgt_p.${k}`).join(', ')} HAVING sum(__pgt_p.__pgt_n) > 0`;
  return `SELECT ${[...finals, '-1 AS __pgt_w'].join(', ')} FROM (${combined}) __pgt_b${having ? ` WHERE ${having}` : ''}`;
}
