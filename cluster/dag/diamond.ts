// Diamond joins: a stream table whose sources share an ancestor (A → B → D, A → C → D) sees a
// mixed state of that ancestor unless the paths between them refresh in one snapshot.
import type { Dag, DagNode } from './dag.js';

// A Dag is immutable, so its groups never change; the cache goes with it.
const groups = new WeakMap<Dag, Map<string, readonly string[] | undefined>>();

/**
 * The group of diamond join `id`: the stream tables on paths from the shared ancestors down to
 * it, upstream first, `id` last; undefined when `id` is not a diamond join (or not in the DAG).
 * Refreshed together in one snapshot, they give D a view of one state of every shared ancestor.
 *
 * D is a diamond join when two of its direct sources (at least one a stream table; a base table D
 * reads directly counts as a source too, since D = B JOIN A with B over A mixes states the same
 * way) have ancestries that meet. An ancestry includes the source itself: in a triangle C → B → D,
 * C → D, C is shared and stays out of the group, as reading it once in the snapshot is enough.
 * The shared ancestors themselves are never refreshed: the snapshot shows each in one state.
 *
 * Cost: one walk of D's ancestry per direct source. Asked for on demand and kept per DAG, so a
 * node pays only for the diamond joins it refreshes, not for every stream table at each catalog
 * load (deep, densely joined catalogs make ancestries large).
 */
export function diamondGroup(dag: Dag, id: string): readonly string[] | undefined {
  let cache = groups.get(dag);
  if (cache === undefined) {
    cache = new Map();
    groups.set(dag, cache);
  }
  if (cache.has(id)) return cache.get(id);
  const node = dag.nodes.get(id);
  const group = node === undefined ? undefined : groupOf(dag.nodes, dag.position, node);
  cache.set(id, group);
  return group;
}

// Stream tables and base tables share one key space here: ids may collide (both are numbers).
const stKey = (id: string) => `s${id}`;
const tableKey = (id: string) => `t${id}`;

function groupOf(
  nodes: ReadonlyMap<string, DagNode>,
  position: ReadonlyMap<string, { readonly wave: number }>,
  d: DagNode,
): readonly string[] | undefined {
  const stSources = [...new Set(d.sources)];
  const tableSources = [...new Set(d.tables ?? [])];
  if (stSources.length === 0 || stSources.length + tableSources.length < 2) return undefined;

  // How many of D's direct sources each ancestor lies above (or is).
  const reach = new Map<string, number>();
  const ancestors = new Set<string>();
  const count = (key: string) => reach.set(key, (reach.get(key) ?? 0) + 1);
  for (const table of tableSources) count(tableKey(table));
  for (const source of stSources) {
    const seen = new Set<string>();
    const tables = new Set<string>();
    const stack = [source];
    for (let id = stack.pop(); id !== undefined; id = stack.pop()) {
      if (seen.has(id)) continue;
      seen.add(id);
      ancestors.add(id);
      const node = nodes.get(id) as DagNode;
      stack.push(...node.sources);
      for (const table of node.tables ?? []) tables.add(table);
    }
    for (const id of seen) count(stKey(id));
    for (const table of tables) count(tableKey(table));
  }
  const shared = new Set<string>();
  for (const [key, n] of reach) if (n >= 2) shared.add(key);
  if (shared.size === 0) return undefined;

  // By wave, then id: upstream first (so whether a stream table lies below a shared ancestor is
  // known from its sources before it is asked), and the same order however the input is listed.
  const wave = (id: string) => position.get(id)?.wave ?? 0;
  const order = [...ancestors].sort((a, b) => wave(a) - wave(b) || (a < b ? -1 : a > b ? 1 : 0));
  const below = new Set<string>();
  const group: string[] = [];
  for (const id of order) {
    if (isBelow(nodes.get(id) as DagNode, shared, below)) {
      below.add(id);
      if (!shared.has(stKey(id))) group.push(id);
    }
  }
  group.push(d.id);
  return group;
}

function isBelow(node: DagNode, shared: ReadonlySet<string>, below: ReadonlySet<string>): boolean {
  return (
    node.sources.some((s) => below.has(s) || shared.has(stKey(s))) ||
    (node.tables ?? []).some((t) => shared.has(tableKey(t)))
  );
}
