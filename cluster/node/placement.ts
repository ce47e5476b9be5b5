// Where stream tables run: a pure decision of the coordinator from the catalog's stream tables,
// the live nodes and the current leases. Orphans (no lease, an expired one, or a holder that is
// dead or draining) go to the least-loaded live node; then a few moves even the load out.

export interface PlacementInput {
  /** every stream table in the catalog, upstream first (the DAG's order) */
  readonly streamTables: readonly string[];
  /** live node ids, not draining */
  readonly nodes: readonly string[];
  /** current valid holder of each stream table's lease (expired leases left out) */
  readonly holders: ReadonlyMap<string, string>;
  /** moves of healthy leases per round: each one costs the moved table a lease handover */
  readonly maxMoves: number;
}

export interface Grant {
  readonly id: string;
  readonly to: string;
  /** the node that held it, when this is a move */
  readonly from: string | undefined;
}

/** Node → the expiry of its heartbeat entry when it was last seen holding an expired lease. */
export type Lapses = ReadonlyMap<string, number>;

/**
 * The suspects: nodes seen holding an expired lease, now or in an earlier round, and not heard
 * from since (their heartbeat entry has not been rewritten). Once a dead node's leases are
 * regranted it holds no expired lease, and without this memory it would be the least loaded
 * target of the moves. Returns the lapses to keep for the next round with them.
 */
export function suspectNodes(
  previous: Lapses,
  expiredHolders: Iterable<string>,
  heartbeats: ReadonlyMap<string, { readonly expiresAt: number }>,
): { lapses: Map<string, number>; suspects: Set<string> } {
  const lapses = new Map(previous);
  for (const node of expiredHolders) lapses.set(node, heartbeats.get(node)?.expiresAt ?? 0);
  const suspects = new Set<string>();
  for (const [node, seen] of lapses) {
    const heartbeat = heartbeats.get(node);
    if (heartbeat === undefined || heartbeat.expiresAt > seen) lapses.delete(node);
    else suspects.add(node);
  }
  return { lapses, suspects };
}

/**
 * The nodes placement may give stream tables to: the live ones (not draining) but the suspects.
 * A node's leases and its heartbeat are written at different times, so a dead node's leases
 * often expire before its heartbeat entry does; while it still looks alive it is also the least
 * loaded, and would be given its own tables back, or others by the moves, to be regranted once
 * more when its heartbeat expires. If that leaves no node (a lone node that stalled), every live
 * node is eligible.
 */
export function eligibleNodes(alive: readonly string[], suspects: ReadonlySet<string>): string[] {
  const eligible = alive.filter((n) => !suspects.has(n));
  return eligible.length > 0 ? eligible : [...alive];
}

export function place(input: PlacementInput): Grant[] {
  const grants: Grant[] = [];
  if (input.nodes.length === 0) return grants;
  const load = new Map<string, string[]>(input.nodes.map((n) => [n, []]));
  const orphans: string[] = [];
  for (const id of input.streamTables) {
    const holder = input.holders.get(id);
    const mine = holder === undefined ? undefined : load.get(holder);
    if (mine === undefined) orphans.push(id);
    else mine.push(id);
  }
  // A small number of nodes: finding the least loaded by a scan over nodes is O(nodes).
  const lightest = (): [string, string[]] => {
    let best: [string, string[]] | undefined;
    for (const entry of load) if (best === undefined || entry[1].length < best[1].length) best = entry;
    return best as [string, string[]];
  };
  const heaviest = (): [string, string[]] => {
    let best: [string, string[]] | undefined;
    for (const entry of load) if (best === undefined || entry[1].length > best[1].length) best = entry;
    return best as [string, string[]];
  };
  for (const id of orphans) {
    const [node, list] = lightest();
    list.push(id);
    grants.push({ id, to: node, from: input.holders.get(id) });
  }
  for (let moves = 0; moves < input.maxMoves; moves++) {
    const [from, heavy] = heaviest();
    const [to, light] = lightest();
    if (heavy.length - light.length <= 1) break;
    const id = heavy.pop() as string;
    light.push(id);
    grants.push({ id, to, from });
  }
  return grants;
}
