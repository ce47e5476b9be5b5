import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { type RefreshResult, type StreamTableInput, withWork } from '../../actors/stream-table/index.js';
import { candidates, dispatch, type StreamTableActor } from '../../cluster/node/dispatch.js';
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

describe('parking', () => {
  it('takes a parked id out of the heap until it is scheduled again; remove forgets both', () => {
    const q = new DueQueue();
    q.schedule('a', 10);
    q.schedule('b', 10);
    q.park('a');
    expect(q.popDue(20)).toEqual(['b']);
    expect([...q.parked]).toEqual(['a']);
    expect(q.size).toBe(1);
    q.schedule('a', 30);
    expect([...q.parked]).toEqual([]);
    expect(q.popDue(30)).toEqual(['a']);
    q.park('c');
    q.remove('c');
    expect(q.size).toBe(0);
  });
});

describe('dispatch', () => {
  const T0 = Date.parse('2026-01-01T00:00:00Z');
  const done: RefreshResult = {
    action: 'DIFFERENTIAL',
    rowsInserted: 1,
    rowsDeleted: 0,
    durationMs: 1,
    refreshId: '1',
    frontier: '1:1:',
    changesConsumed: 1,
  };

  function node(count: number, lastRefreshAt: (i: number) => number) {
    let clock = T0;
    const now = () => clock;
    const refreshed: string[] = [];
    const machine = withWork({
      refresh: async (input) => {
        refreshed.push(input.id);
        return done;
      },
      reinit: async () => done,
    });
    const queue = new DueQueue();
    const actors = new Map<string, { actor: StreamTableActor }>();
    for (let i = 0; i < count; i++) {
      const input: StreamTableInput = {
        id: String(i),
        name: `public.st_${i}`,
        schedule: { kind: 'interval', ms: 1_000 },
        status: 'ACTIVE',
        needsReinit: false,
        epoch: 1,
        populated: true,
        lastRefreshAt: lastRefreshAt(i),
        consecutiveFailures: 0,
        now,
      };
      const actor = createActor(machine, { input });
      actors.set(input.id, { actor });
      actor.start();
      queue.schedule(input.id, T0);
    }
    return { queue, actors, refreshed, now, advance: (ms: number) => (clock += ms) };
  }

  it('parks due tables without changes without waking them, and refreshes those with changes', async () => {
    const { queue, actors, refreshed, now } = node(3, () => T0 - 5_000);
    const before = [...actors.values()].map(({ actor }) => actor.getSnapshot());
    const due = queue.popDue(now());
    expect(candidates(queue, due).sort()).toEqual(['0', '1', '2']);
    dispatch(queue, actors, due, new Set(['1']), now);
    await Promise.resolve();
    expect(refreshed).toEqual(['1']);
    expect([...queue.parked].sort()).toEqual(['0', '2']);
    expect(actors.get('0')?.actor.getSnapshot()).toBe(before[0]);
    // Parked tables are asked about again each tick, with nothing popped from the heap.
    expect(candidates(queue, queue.popDue(now())).sort()).toEqual(['0', '2']);
    dispatch(queue, actors, [], new Set(['2']), now);
    await Promise.resolve();
    expect(refreshed).toEqual(['1', '2']);
    expect([...queue.parked]).toEqual(['0']);
  });

  it('puts a table that is not due yet back in the heap at its due time', () => {
    const { queue, actors, now, advance } = node(1, () => T0 - 200);
    dispatch(queue, actors, queue.popDue(now()), new Set(), now);
    expect([...queue.parked]).toEqual([]);
    expect(queue.popDue(now() + 799)).toEqual([]);
    advance(800);
    expect(queue.popDue(now())).toEqual(['0']);
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
