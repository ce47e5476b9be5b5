import { describe, expect, it } from 'vitest';
import { buildDag, type DagNode, diamondGroup } from '../../cluster/dag/index.js';

const NOW = Date.parse('2024-01-01T00:00:00Z');
const st = (id: string, sources: string[] = [], tables: string[] = []): DagNode => ({
  id,
  sources,
  tables,
  schedule: { kind: 'interval', ms: 60_000 },
});
const groups = (nodes: DagNode[]) => {
  const dag = buildDag(nodes, { now: NOW });
  return Object.fromEntries(
    dag.order.flatMap((id) => (diamondGroup(dag, id) ? [[id, diamondGroup(dag, id)]] : [])),
  );
};

describe('diamond groups', () => {
  it('groups B, C and D when B and C read the stream table A and D reads both', () => {
    expect(groups([st('A'), st('B', ['A']), st('C', ['A']), st('D', ['B', 'C'])])).toEqual({
      D: ['B', 'C', 'D'],
    });
  });

  it('groups B, C and D when B and C read the same base table', () => {
    expect(groups([st('B', [], ['t1']), st('C', [], ['t1']), st('D', ['B', 'C'])])).toEqual({
      D: ['B', 'C', 'D'],
    });
  });

  it('finds no diamond when the two sources share nothing', () => {
    expect(groups([st('B', [], ['t1']), st('C', [], ['t2']), st('D', ['B', 'C'])])).toEqual({});
  });

  it('finds no diamond in a chain or a fan-out', () => {
    expect(groups([st('A', [], ['t1']), st('B', ['A']), st('C', ['A']), st('E', ['B'])])).toEqual({});
  });

  it('keeps every stream table on a longer path, upstream first, and not the shared ancestor', () => {
    const nodes = [st('A'), st('B', ['A']), st('B2', ['B']), st('C', ['A']), st('D', ['B2', 'C'])];
    expect(groups(nodes)).toEqual({ D: ['B', 'C', 'B2', 'D'] });
  });

  it('leaves the shared stream table out of a triangle C → B → D, C → D', () => {
    expect(groups([st('C', [], ['t1']), st('B', ['C']), st('D', ['B', 'C'])])).toEqual({ D: ['B', 'D'] });
  });

  it('groups a stream table that reads a base table and a stream table over it', () => {
    expect(groups([st('B', [], ['t1']), st('D', ['B'], ['t1'])])).toEqual({ D: ['B', 'D'] });
  });

  it('does not group a stream table reading only base tables', () => {
    expect(groups([st('D', [], ['t1', 't2'])])).toEqual({});
  });

  it('leaves out sources of D that share nothing with the others', () => {
    const nodes = [st('A'), st('B', ['A']), st('C', ['A']), st('E', [], ['t9']), st('D', ['B', 'C', 'E'])];
    expect(groups(nodes)).toEqual({ D: ['B', 'C', 'D'] });
  });

  it('stops at the nearest shared ancestors: what lies above them is read in one state anyway', () => {
    // T → A → B → D and A → C → D: A and T are both shared; A is not refreshed.
    const nodes = [st('A', [], ['T']), st('B', ['A']), st('C', ['A']), st('D', ['B', 'C'])];
    expect(groups(nodes)).toEqual({ D: ['B', 'C', 'D'] });
  });

  it('refreshes the stream table between a shared base table and D when the other path is shorter', () => {
    // t1 → A → B → D and t1 → C → D: only t1 is shared, so A is refreshed with B and C.
    const nodes = [st('A', [], ['t1']), st('B', ['A']), st('C', [], ['t1']), st('D', ['B', 'C'])];
    expect(groups(nodes)).toEqual({ D: ['A', 'C', 'B', 'D'] });
  });

  it('groups nested diamonds each on its own', () => {
    const nodes = [
      st('B', [], ['t1']),
      st('C', [], ['t1']),
      st('D', ['B', 'C']),
      st('E', ['D']),
      st('F', ['D', 'E']),
    ];
    expect(groups(nodes)).toEqual({ D: ['B', 'C', 'D'], F: ['E', 'F'] });
  });

  it('does not tell stream tables and base tables with the same id apart by accident', () => {
    expect(groups([st('1'), st('B', ['1']), st('C', [], ['1']), st('D', ['B', 'C'])])).toEqual({});
  });

  it('has no group for a stream table the DAG does not hold', () => {
    expect(diamondGroup(buildDag([st('A')], { now: NOW }), 'Z')).toBeUndefined();
  });

  it('gives the same groups whatever order the catalog lists the stream tables in', () => {
    const nodes = [st('A'), st('B', ['A']), st('B2', ['B']), st('C', ['A']), st('D', ['B2', 'C'])];
    expect(groups([...nodes].reverse())).toEqual(groups(nodes));
  });
});
