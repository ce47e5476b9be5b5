import { describe, expect, it } from 'vitest';
import {
  buildDag,
  DagCycle,
  type DagNode,
  DuplicateStreamTable,
  downstreamOf,
  readersOf,
  StreamTableNotInDag,
  scheduleOf,
  sourcesOf,
  UnknownSource,
  waveOf,
} from '../../cluster/dag/index.js';
import type { Schedule } from '../../shared/schedule/index.js';
import { catchError } from './catch-error.js';

const NOW = Date.parse('2024-01-01T00:00:00Z');
const every = (ms: number): Schedule => ({ kind: 'interval', ms });
const calculated: Schedule = { kind: 'calculated' };
const st = (id: string, sources: string[] = [], schedule: Schedule = every(60_000)): DagNode => ({
  id,
  sources,
  schedule,
});

describe('buildDag', () => {
  // A → B → D and A → C → D: B and C read A, D reads both.
  const diamond = [st('A'), st('B', ['A']), st('C', ['A']), st('D', ['B', 'C'])];

  it('orders a diamond upstream first and cuts it into three waves', () => {
    const dag = buildDag(diamond, { now: NOW });
    expect(dag.order).toEqual(['A', 'B', 'C', 'D']);
    expect(dag.waves).toEqual([['A'], ['B', 'C'], ['D']]);
    expect(waveOf(dag, 'C')).toBe(1);
    expect(waveOf(dag, 'D')).toBe(2);
  });

  it('orders a diamond the same way whatever order the catalog lists it in', () => {
    const dag = buildDag([...diamond].reverse(), { now: NOW });
    expect(dag.waves.map((wave) => [...wave].sort())).toEqual([['A'], ['B', 'C'], ['D']]);
    for (const id of dag.order) {
      for (const source of sourcesOf(dag, id)) {
        expect(dag.order.indexOf(source)).toBeLessThan(dag.order.indexOf(id));
      }
    }
  });

  it('puts each level of a three-level chain in its own wave', () => {
    const dag = buildDag([st('C', ['B']), st('B', ['A']), st('A')], { now: NOW });
    expect(dag.order).toEqual(['A', 'B', 'C']);
    expect(dag.waves).toEqual([['A'], ['B'], ['C']]);
  });

  it('places a stream table by its longest path from the roots', () => {
    const dag = buildDag([st('A'), st('B', ['A']), st('C', ['A', 'B'])], { now: NOW });
    expect(dag.waves).toEqual([['A'], ['B'], ['C']]);
  });

  it('looks up direct sources and readers, and every stream table downstream in order', () => {
    const dag = buildDag([...diamond, st('E', ['D']), st('X')], { now: NOW });
    expect(sourcesOf(dag, 'D')).toEqual(['B', 'C']);
    expect(readersOf(dag, 'A')).toEqual(['B', 'C']);
    expect(readersOf(dag, 'E')).toEqual([]);
    expect(downstreamOf(dag, 'A')).toEqual(['B', 'C', 'D', 'E']);
    expect(downstreamOf(dag, 'C')).toEqual(['D', 'E']);
    expect(downstreamOf(dag, 'X')).toEqual([]);
  });

  it('counts a source read twice (a self-join) as one edge', () => {
    const dag = buildDag([st('A'), st('B', ['A', 'A'])], { now: NOW });
    expect(dag.waves).toEqual([['A'], ['B']]);
    expect(readersOf(dag, 'A')).toEqual(['B']);
  });

  it('refuses a cycle and names it in the direction data flows', () => {
    const error = catchError(() => buildDag([st('A', ['C']), st('B', ['A']), st('C', ['B'])], { now: NOW }));
    expect(error).toBeInstanceOf(DagCycle);
    expect(error).toMatchObject({ code: 'DAG_CYCLE', path: ['A', 'B', 'C', 'A'] });
    expect((error as DagCycle).message).toBe('stream tables read each other in a cycle: A → B → C → A');
  });

  it('names only the cycle, not the stream tables upstream or downstream of it', () => {
    const nodes = [st('R'), st('A', ['R', 'C']), st('B', ['A']), st('C', ['B']), st('Z', ['C'])];
    expect(catchError(() => buildDag(nodes, { now: NOW }))).toMatchObject({ path: ['A', 'B', 'C', 'A'] });
  });

  it('refuses a stream table that reads itself', () => {
    expect(catchError(() => buildDag([st('A', ['A'])], { now: NOW }))).toMatchObject({
      code: 'DAG_CYCLE',
      path: ['A', 'A'],
    });
  });

  it('refuses a source it was not given and an id given twice', () => {
    expect(() => buildDag([st('B', ['A'])], { now: NOW })).toThrow(UnknownSource);
    expect(() => buildDag([st('A'), st('A')], { now: NOW })).toThrow(DuplicateStreamTable);
  });

  it('refuses lookups of an id it does not hold', () => {
    const dag = buildDag(diamond, { now: NOW });
    for (const lookup of [sourcesOf, readersOf, downstreamOf, waveOf, scheduleOf]) {
      expect(() => lookup(dag, 'nope')).toThrow(StreamTableNotInDag);
    }
  });

  it('handles a chain of ten thousand stream tables without recursion', () => {
    const nodes = Array.from({ length: 10_000 }, (_, i) =>
      st(`s${i}`, i === 0 ? [] : [`s${i - 1}`], calculated),
    );
    nodes[nodes.length - 1] = st('s9999', ['s9998'], every(5_000));
    const dag = buildDag(nodes, { now: NOW });
    expect(dag.waves).toHaveLength(10_000);
    expect(scheduleOf(dag, 's0')).toEqual(every(5_000));
    expect(downstreamOf(dag, 's0')).toHaveLength(9_999);
  });
});

describe('CALCULATED schedules', () => {
  it('keeps interval and cron schedules as they are', () => {
    const cron: Schedule = { kind: 'cron', expression: '*/5 * * * *' };
    const dag = buildDag([st('A', [], every(1_000)), st('B', ['A'], cron)], { now: NOW });
    expect(scheduleOf(dag, 'A')).toEqual(every(1_000));
    expect(scheduleOf(dag, 'B')).toEqual(cron);
  });

  it('takes the tightest interval among the stream tables that read it', () => {
    const dag = buildDag(
      [st('A', [], calculated), st('B', ['A'], every(30_000)), st('C', ['A'], every(10_000))],
      {
        now: NOW,
      },
    );
    expect(scheduleOf(dag, 'A')).toEqual(every(10_000));
  });

  it('resolves through a chain of CALCULATED stream tables', () => {
    const nodes = [st('A', [], calculated), st('B', ['A'], calculated), st('C', ['B'], every(5_000))];
    const dag = buildDag(nodes, { now: NOW });
    expect(scheduleOf(dag, 'B')).toEqual(every(5_000));
    expect(scheduleOf(dag, 'A')).toEqual(every(5_000));
  });

  it('falls back to one minute, or the configured fallback, when nothing reads it', () => {
    expect(scheduleOf(buildDag([st('A', [], calculated)], { now: NOW }), 'A')).toEqual(every(60_000));
    const dag = buildDag([st('A', [], calculated)], { now: NOW, calculatedFallbackMs: 300_000 });
    expect(scheduleOf(dag, 'A')).toEqual(every(300_000));
  });

  it('counts a CALCULATED reader that fell back like any other reader', () => {
    const nodes = [st('A', [], calculated), st('B', ['A'], calculated), st('C', ['A'], every(120_000))];
    const dag = buildDag(nodes, { now: NOW, calculatedFallbackMs: 90_000 });
    expect(scheduleOf(dag, 'B')).toEqual(every(90_000));
    expect(scheduleOf(dag, 'A')).toEqual(every(90_000));
  });

  it('uses the smallest gap between fire times of a cron reader', () => {
    const nodes = [
      st('A', [], calculated),
      st('B', ['A'], { kind: 'cron', expression: '*/5 * * * *' }),
      st('C', ['A'], { kind: 'cron', expression: '0 9 * * 1-5' }),
    ];
    const dag = buildDag(nodes, { now: Date.parse('2024-01-05T12:00:00Z') });
    expect(scheduleOf(dag, 'A')).toEqual(every(300_000));
  });
});
