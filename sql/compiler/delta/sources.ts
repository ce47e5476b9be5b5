// The captured relations a plan reads, numbered in order of first use; the number names the
// CTEs of the delta statement (__pgt_c<i> consumed changes, __pgt_d<i> weighted rows, __pgt_o<i>
// the relation as it was at the previous frontier, __pgt_u<i> the changes undone); derived
// deltas, computed once per statement, are __pgt_g<i>.
import type { RelationFacts } from '../facts.js';
import type { Referenced } from './referenced.js';

export interface Source {
  index: number;
  relation: RelationFacts;
}

export class Sources {
  /** The columns the query observes: an UPDATE of none of them is no change to it. */
  readonly referenced: Referenced;
  readonly #byRelid = new Map<number, Source>();
  readonly #old = new Set<number>();
  readonly #derived = new Map<string, string>();

  /** Names of aggregate functions, for rules that must tell an aggregate call from a function call. */
  readonly aggregates: ReadonlySet<string>;

  constructor(referenced: Referenced = 'all', aggregates: ReadonlySet<string> = new Set()) {
    this.referenced = referenced;
    this.aggregates = aggregates;
  }

  /**
   * A delta computed once per statement (a grouped subquery's), named by a CTE that every arm
   * reading it shares. The same SQL text gets the same CTE: a subquery used twice is computed once.
   */
  derived(sql: string): string {
    let name = this.#derived.get(sql);
    if (!name) {
      name = derivedCte(this.#derived.size);
      this.#derived.set(sql, name);
    }
    return name;
  }

  /** The derived deltas in order of definition: each reads only those defined before it. */
  derivedList(): [name: string, sql: string][] {
    return [...this.#derived].map(([sql, name]) => [name, sql]);
  }

  use(relation: RelationFacts): Source {
    let source = this.#byRelid.get(relation.relid);
    if (!source) {
      source = { index: this.#byRelid.size, relation };
      this.#byRelid.set(relation.relid, source);
    }
    return source;
  }

  /** Like use(), and the delta statement defines the relation's previous state too. */
  useOld(relation: RelationFacts): Source {
    const source = this.use(relation);
    this.#old.add(source.index);
    return source;
  }

  needsOld(source: Source): boolean {
    return this.#old.has(source.index);
  }

  list(): Source[] {
    return [...this.#byRelid.values()];
  }
}

/**
 * The columns of a relation a delta reads: those the query names, and the primary key, which
 * keyed plans add to find a row. Changes, previous states and the rows an outer join weighs
 * carry only these; the rest cannot change what the query returns.
 */
export function keptColumns(relation: RelationFacts, referenced: Referenced): RelationFacts['columns'] {
  const key = new Set(relation.key ?? []);
  return visibleColumns(relation).filter(
    (c) => referenced === 'all' || referenced.has(c.name) || key.has(c.name),
  );
}

/** The captured columns of a relation; an upstream stream table's hidden __pgt_ ones are not. */
export function visibleColumns(relation: RelationFacts): RelationFacts['columns'] {
  return relation.columns.filter((c) => c.captured && !c.name.startsWith('__pgt_'));
}

export const changesCte = (i: number): string => `__pgt_c${i}`;
export const deltaCte = (i: number): string => `__pgt_d${i}`;
export const oldCte = (i: number): string => `__pgt_o${i}`;
export const undoneCte = (i: number): string => `__pgt_u${i}`;
export const derivedCte = (i: number): string => `__pgt_g${i}`;
export const changedFlag = (i: number): string => `changed_${i}`;
