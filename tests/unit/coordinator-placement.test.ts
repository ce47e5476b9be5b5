import { describe, expect, it } from 'vitest';
import { eligibleNodes, place, suspectNodes } from '../../cluster/node/placement.js';

describe('coordinator placement targets', () => {
  it('leaves out a suspect node, so a dead one is not given back its own tables', () => {
    const nodes = eligibleNodes(['a', 'b', 'c'], new Set(['c']));
    expect(nodes).toEqual(['a', 'b']);
    const holders = new Map([
      ['1', 'a'],
      ['2', 'b'],
    ]);
    const grants = place({ streamTables: ['1', '2', '3', '4'], nodes, holders, maxMoves: 2 });
    expect(grants.map((g) => g.to).sort()).toEqual(['a', 'b']);
  });

  it('keeps every live node when all of them are suspect (a lone node that stalled)', () => {
    expect(eligibleNodes(['a'], new Set(['a']))).toEqual(['a']);
  });
});

describe('coordinator suspects', () => {
  const beat = (expiresAt: number) => ({ expiresAt });

  it('suspects a node seen holding an expired lease until its heartbeat entry is rewritten', () => {
    const first = suspectNodes(new Map(), ['dead'], new Map([['dead', beat(1_000)]]));
    expect([...first.suspects]).toEqual(['dead']);
    // Its leases were regranted: it holds no expired lease now, and is still suspect.
    const second = suspectNodes(first.lapses, [], new Map([['dead', beat(1_000)]]));
    expect([...second.suspects]).toEqual(['dead']);
    // It heartbeat again: alive after all.
    const third = suspectNodes(second.lapses, [], new Map([['dead', beat(1_700)]]));
    expect([...third.suspects]).toEqual([]);
    expect(third.lapses.size).toBe(0);
  });

  it('forgets a node that left the membership', () => {
    const first = suspectNodes(new Map(), ['gone'], new Map([['gone', beat(1_000)]]));
    expect(suspectNodes(first.lapses, [], new Map()).lapses.size).toBe(0);
  });
});
