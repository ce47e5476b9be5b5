// O(1) lookups into a Dag by id; transitive walks cost what they return.
import type { ConcreteSchedule } from '../../shared/schedule/index.js';
import type { Dag, DagNode } from './dag.js';
import { StreamTableNotInDag } from './errors.js';

export function nodeOf(dag: Dag, id: string): DagNode {
  const node = dag.nodes.get(id);
  if (node === undefined) throw new StreamTableNotInDag(id);
  return node;
}

/** Direct upstream: the stream tables `id` reads. */
export function sourcesOf(dag: Dag, id: string): readonly string[] {
  return nodeOf(dag, id).sources;
}

/** Direct downstream: the stream tables that read `id`. */
export function readersOf(dag: Dag, id: string): readonly string[] {
  nodeOf(dag, id);
  return dag.readers.get(id) ?? [];
}

/** Every stream table that reads `id` directly or through others, upstream first. */
export function downstreamOf(dag: Dag, id: string): string[] {
  const found = new Set<string>();
  const stack = [...readersOf(dag, id)];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    if (found.has(next)) continue;
    found.add(next);
    stack.push(...(dag.readers.get(next) ?? []));
  }
  const index = (of: string) => dag.position.get(of)?.index ?? 0;
  return [...found].sort((a, b) => index(a) - index(b));
}

export function waveOf(dag: Dag, id: string): number {
  nodeOf(dag, id);
  return dag.position.get(id)?.wave ?? 0;
}

/** The schedule to run `id` on: its own, or for CALCULATED the one resolved from its readers. */
export function scheduleOf(dag: Dag, id: string): ConcreteSchedule {
  const schedule = dag.schedules.get(id);
  if (schedule === undefined) throw new StreamTableNotInDag(id);
  return schedule;
}
