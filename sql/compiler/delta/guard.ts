// When a delta variant can have rows, as a formula over "source i has changes". Arms are guarded
// by it so that PostgreSQL skips them (a one-time filter) when no change can reach them.
import { unreachable } from '../../../shared/unreachable.js';
import { changedFlag } from './sources.js';

export type Guard =
  | { kind: 'changed'; source: number }
  | { kind: 'all'; of: Guard[] }
  | { kind: 'any'; of: Guard[] };

export const changed = (source: number): Guard => ({ kind: 'changed', source });

/** Conjunction, flattened and deduplicated so that equal formulas print the same text. */
export function allOf(guards: Guard[]): Guard {
  return normalized('all', guards);
}

/** Disjunction, flattened and deduplicated like allOf. */
export function anyOf(guards: Guard[]): Guard {
  return normalized('any', guards);
}

function normalized(kind: 'all' | 'any', guards: Guard[]): Guard {
  const flat = guards.flatMap((g) => (g.kind === kind ? g.of : [g]));
  const unique = new Map(flat.map((g) => [flagsSql(g), g]));
  // Absorption, x OR (x AND y) = x: the antijoin variant's guard lists its parts' guards.
  const single = new Set(flat.flatMap((g) => (g.kind === 'changed' ? [g.source] : [])));
  const absorbed = (g: Guard) =>
    kind === 'any' && g.kind === 'all' && g.of.some((h) => h.kind === 'changed' && single.has(h.source));
  const of = [...unique.values()].filter((g) => !absorbed(g)).sort(byText);
  return of.length === 1 && of[0] ? of[0] : { kind, of };
}

// Single flags first in source order, so an inner join prints changed_0 AND changed_1.
function byText(x: Guard, y: Guard): number {
  if (x.kind === 'changed' && y.kind === 'changed') return x.source - y.source;
  if (x.kind === 'changed') return -1;
  if (y.kind === 'changed') return 1;
  return flagsSql(x) < flagsSql(y) ? -1 : 1;
}

/** The formula over the columns of __pgt_flags aliased __pgt_f. */
export function flagsSql(guard: Guard): string {
  switch (guard.kind) {
    case 'changed':
      return `__pgt_f.${changedFlag(guard.source)}`;
    case 'all':
      return guard.of.length === 0 ? 'true' : guard.of.map(operand).join(' AND ');
    case 'any':
      return guard.of.length === 0 ? 'false' : guard.of.map(operand).join(' OR ');
    default:
      return unreachable(guard);
  }
}

function operand(guard: Guard): string {
  return guard.kind === 'changed' ? flagsSql(guard) : `(${flagsSql(guard)})`;
}

/** A scalar subquery PostgreSQL evaluates once per statement, before the arm it filters. */
export function guardSql(guard: Guard): string {
  return `(SELECT ${flagsSql(guard)} FROM __pgt_flags __pgt_f)`;
}
