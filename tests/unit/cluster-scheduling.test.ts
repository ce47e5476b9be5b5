import { describe, expect, it } from 'vitest';
import { DueQueue } from '../../cluster/node/due-queue.js';
import { place } from '../../cluster/node/placement.js';

describe('DueQueue', () => {
  it('hands out only what is due, earliest first', () => {
    const q = new DueQueue();
    q.schedule('c', 30);
    q.schedule('a', 10);
    q.schedule('b', 20);
    expect(q.popDue(5)).toEqual([]);
    expect(q.popDue(20)).toEqual(['a', 'b']);
    expect(q.popDue(100)).toEqual(['c']);
    expect(q.size).toBe(0);
  });

  it('keeps only the latest due time of a rescheduled id, and forgets removed ids', () => {
    const q = new DueQueue();
    q.schedule('a', 10);
    q.schedule('a', 50);
    q.schedule('b', 10);
    q.remove('b');
    expect(q.popDue(20)).toEqual([]);
    expect(q.popDue(50)).toEqual(['a']);
  });

  it('stays small under many reschedules and orders 5,000 ids by due time', () => {
    const q = new DueQueue();
    for (let round = 0; round < 20; round++)
      for (let i = 0; i < 5_000; i++) q.schedule(String(i), (i * 7919) % 5_000);
    expect(q.size).toBe(5_000);
    const out = q.popDue(Number.POSITIVE_INFINITY);
    expect(out).toHaveLength(5_000);
    const due = out.map((id) => (Number(id) * 7919) % 5_000);
    expect(due).toEqual([...due].sort((a, b) => a - b));
  });
});

describe('place', () => {
  const ids = (n: number) => Array.from({ length: n }, (_, i) => String(i + 1));

  it('spreads unleased stream tables evenly over the live nodes', () => {
    const grants = place({ streamTables: ids(7), nodes: ['a', 'b', 'c'], holders: new Map(), maxMoves: 0 });
    const count = (n: string) => grants.filter((g) => g.to === n).length;
    expect(grants).toHaveLength(7);
    expect([count('a'), count('b'), count('c')].sort()).toEqual([2, 2, 3]);
  });

  it('moves the tables of a node that is gone to the others, and leaves the rest alone', () => {
    const holders = new Map([
      ['1', 'a'],
      ['2', 'a'],
      ['3', 'b'],
      ['4', 'b'],
      ['5', 'dead'],
      ['6', 'dead'],
    ]);
    const grants = place({ streamTables: ids(6), nodes: ['a', 'b', 'c'], holders, maxMoves: 0 });
    expect(grants.map((g) => g.id).sort()).toEqual(['5', '6']);
    expect(grants.every((g) => g.to === 'c' && g.from === 'dead')).toBe(true);
  });

  it('evens the load out with at most maxMoves moves per round', () => {
    const holders = new Map(ids(6).map((id) => [id, 'a']));
    const first = place({ streamTables: ids(6), nodes: ['a', 'b', 'c'], holders, maxMoves: 2 });
    expect(first).toHaveLength(2);
    expect(first.every((g) => g.from === 'a' && g.to !== 'a')).toBe(true);
    for (const g of first) holders.set(g.id, g.to);
    const second = place({ streamTables: ids(6), nodes: ['a', 'b', 'c'], holders, maxMoves: 2 });
    for (const g of second) holders.set(g.id, g.to);
    const counts = ['a', 'b', 'c'].map((n) => [...holders.values()].filter((h) => h === n).length);
    expect(counts).toEqual([2, 2, 2]);
    expect(place({ streamTables: ids(6), nodes: ['a', 'b', 'c'], holders, maxMoves: 2 })).toEqual([]);
  });

  it('grants nothing without a live node', () => {
    expect(place({ streamTables: ids(3), nodes: [], holders: new Map(), maxMoves: 2 })).toEqual([]);
  });
});
