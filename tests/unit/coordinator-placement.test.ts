import { describe, expect, it } from 'vitest';
import { eligibleNodes, place } from '../../cluster/node/placement.js';

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
