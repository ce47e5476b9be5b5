// The captured relations a plan reads, numbered in order of first use; the number names the
// CTEs of the delta statement (__pgt_c<i> consumed changes, __pgt_d<i> weighted rows, __pgt_o<i>
// the relation as it was at the previous frontier).
import type { RelationFacts } from '../facts.js';

export interface Source {
  index: number;
  relation: RelationFacts;
}

export class Sources {
  readonly #byRelid = new Map<number, Source>();
  readonly #old = new Set<number>();

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

export const changesCte = (i: number): string => `__pgt_c${i}`;
export const deltaCte = (i: number): string => `__pgt_d${i}`;
export const oldCte = (i: number): string => `__pgt_o${i}`;
export const changedFlag = (i: number): string => `changed_${i}`;
