// Kahn's algorithm by levels, and the cycle to name when it cannot finish.

import type { DagNode } from './dag.js';
import { DagCycle } from './errors.js';

export interface Topology {
  readonly order: readonly string[];
  readonly waves: readonly (readonly string[])[];
}

/** Throws DagCycle naming one cycle when the graph has any. */
export function sortTopologically(
  nodes: ReadonlyMap<string, DagNode>,
  readers: ReadonlyMap<string, readonly string[]>,
): Topology {
  const pending = new Map<string, number>();
  let wave: string[] = [];
  for (const node of nodes.values()) {
    const count = new Set(node.sources).size;
    pending.set(node.id, count);
    if (count === 0) wave.push(node.id);
  }
  const order: string[] = [];
  const waves: string[][] = [];
  while (wave.length > 0) {
    waves.push(wave);
    order.push(...wave);
    const next: string[] = [];
    for (const id of wave) {
      for (const reader of readers.get(id) ?? []) {
        const left = (pending.get(reader) ?? 0) - 1;
        pending.set(reader, left);
        if (left === 0) next.push(reader);
      }
    }
    wave = next;
  }
  if (order.length < nodes.size) throw new DagCycle(findCycle(nodes, pending));
  return { order, waves };
}

// Every node Kahn left behind still has a source that was left behind, so walking sources from
// any of them must revisit a node; the loop from that node on is a cycle.
function findCycle(nodes: ReadonlyMap<string, DagNode>, pending: ReadonlyMap<string, number>): string[] {
  const leftBehind = (id: string) => (pending.get(id) ?? 0) > 0;
  const start = [...nodes.keys()].find(leftBehind) as string;
  const walk: string[] = [];
  const seenAt = new Map<string, number>();
  let id = start;
  while (!seenAt.has(id)) {
    seenAt.set(id, walk.length);
    walk.push(id);
    id = nodes.get(id)?.sources.find(leftBehind) as string;
  }
  // The walk follows sources (upstream); reversed, the path reads in the direction data flows.
  return [...walk.slice(seenAt.get(id)), id].reverse();
}
