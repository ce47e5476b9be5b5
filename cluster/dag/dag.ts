// The DAG of stream tables as plain immutable data: built once per catalog change by the
// coordinator, then read through the lookups in lookup.ts.
import type { ConcreteSchedule, Schedule } from '../../shared/schedule/index.js';
import { resolveSchedules } from './calculated.js';
import { DuplicateStreamTable, UnknownSource } from './errors.js';
import { sortTopologically } from './topology.js';

export interface DagNode {
  /** pgt_id */
  readonly id: string;
  /** ids of the stream tables this one reads; base tables are not part of the DAG */
  readonly sources: readonly string[];
  /** the other relations it reads (base tables, views…), by any id unique among them: they
   *  tell diamonds over a base table (diamond.ts) */
  readonly tables?: readonly string[];
  readonly schedule: Schedule;
}

export interface Dag {
  readonly nodes: ReadonlyMap<string, DagNode>;
  /** direct downstream: the stream tables that read each one, in input order */
  readonly readers: ReadonlyMap<string, readonly string[]>;
  /** every id, upstream before downstream */
  readonly order: readonly string[];
  /** `order` cut into levels: a wave reads only from earlier waves, so a wave refreshes in parallel */
  readonly waves: readonly (readonly string[])[];
  /** each id's index in `order` and its wave */
  readonly position: ReadonlyMap<string, { readonly index: number; readonly wave: number }>;
  /** every schedule made concrete: CALCULATED resolved to an interval */
  readonly schedules: ReadonlyMap<string, ConcreteSchedule>;
}

export interface DagOptions {
  /** CALCULATED interval for a stream table nothing reads */
  readonly calculatedFallbackMs?: number;
  /** reference instant for the gaps of cron schedules, which vary over time */
  readonly now: number;
}

export const DEFAULT_CALCULATED_FALLBACK_MS = 60_000;

/** Throws DuplicateStreamTable, UnknownSource or DagCycle. */
export function buildDag(input: readonly DagNode[], options: DagOptions): Dag {
  const nodes = new Map<string, DagNode>();
  const readers = new Map<string, string[]>();
  for (const node of input) {
    if (nodes.has(node.id)) throw new DuplicateStreamTable(node.id);
    nodes.set(node.id, node);
    readers.set(node.id, []);
  }
  for (const node of input) {
    // A stream table naming the same source twice (a self-join) is one edge, not two.
    for (const source of new Set(node.sources)) {
      const list = readers.get(source);
      if (list === undefined) throw new UnknownSource(node.id, source);
      list.push(node.id);
    }
  }
  const { order, waves } = sortTopologically(nodes, readers);
  const position = new Map<string, { index: number; wave: number }>();
  waves.forEach((wave, waveIndex) => {
    for (const id of wave) position.set(id, { index: position.size, wave: waveIndex });
  });
  const schedules = resolveSchedules(nodes, readers, order, {
    fallbackMs: options.calculatedFallbackMs ?? DEFAULT_CALCULATED_FALLBACK_MS,
    now: options.now,
  });
  return { nodes, readers, order, waves, position, schedules };
}
