// The pure half of `pgtrickle top` and `status`: text helpers, keys, state and the rendered
// screen, without a terminal (tests/integration/top-tmux.test.ts drives the real one).
import { describe, expect, it } from 'vitest';
import type { StatusRow } from '../../cluster/cli/catalog.js';
import { count, formatDuration, sparkline, table } from '../../cluster/tui/format.js';
import { render } from '../../cluster/tui/render.js';
import {
  initialState,
  parseKeys,
  type TopState,
  update,
  visibleRows,
  withRows,
} from '../../cluster/tui/state.js';

const NOW = 1_800_000_000_000;
const INVERSE = '\x1b[7m';

function row(id: string, name: string, latencies: number[]): StatusRow {
  return {
    id,
    name,
    status: 'ACTIVE',
    refreshMode: 'AUTO',
    effectiveMode: 'DIFFERENTIAL',
    schedule: '1m',
    populated: true,
    dataTimestamp: NOW - 2_000,
    consecutiveErrors: 0,
    lastError: null,
    lastRefresh: { at: NOW - 2_000, action: 'DIFFERENTIAL', durationMs: latencies.at(-1) ?? 0 },
    latencies,
  };
}

const loaded: TopState = withRows(
  initialState('app'),
  [row('1', 'public.orders_by_day', [10, 20, 40, 80]), row('3', 'public.top', [5])],
  NOW,
);

function press(state: TopState, input: string): TopState {
  return parseKeys(input).reduce((s, key) => update(s, key).state, state);
}

describe('text helpers', () => {
  it('scales a sparkline from zero to the largest value, one bar per value', () => {
    expect(sparkline([10, 20, 40, 80])).toBe('▁▂▄█');
    expect(sparkline([0, 0])).toBe('▁▁');
    expect(sparkline([])).toBe('');
  });

  it('says 1 change and 2 rows', () => {
    expect(count(1, 'change')).toBe('1 change');
    expect(count(2, 'row')).toBe('2 rows');
    expect(count(0, 'row')).toBe('0 rows');
  });

  it('writes durations short enough for a column', () => {
    expect(formatDuration(850)).toBe('850ms');
    expect(formatDuration(3_200)).toBe('3.2s');
    expect(formatDuration(245_000)).toBe('4m05s');
    expect(formatDuration(7_380_000)).toBe('2h03m');
  });

  it('pads columns to their widest cell and leaves the last one unpadded', () => {
    expect(table(['A', 'BB'], [['xyz', '1']])).toEqual(['A    BB', 'xyz  1']);
  });
});

describe('keys of pgtrickle top', () => {
  it('reads arrows, Enter, Backspace, Esc and characters from raw input', () => {
    expect(parseKeys('\x1b[A\x1bOBq\x7f\r\x1b\x03')).toEqual([
      { kind: 'up' },
      { kind: 'down' },
      { kind: 'char', char: 'q' },
      { kind: 'backspace' },
      { kind: 'enter' },
      { kind: 'escape' },
      { kind: 'interrupt' },
    ]);
  });

  it('filters by a case-insensitive part of the name and keeps it after Enter', () => {
    const filtered = press(loaded, '/TOP\r');
    expect(filtered.filter).toBe('TOP');
    expect(filtered.editingFilter).toBe(false);
    expect(visibleRows(filtered).map((r) => r.name)).toEqual(['public.top']);
    expect(visibleRows(press(filtered, '\x1b'))).toHaveLength(2);
  });

  it('asks to refresh the selected stream table with r', () => {
    const moved = press(loaded, 'j');
    expect(update(moved, { kind: 'char', char: 'r' }).effect).toEqual({
      kind: 'refresh',
      name: 'public.top',
    });
  });

  it('switches to the nodes view with n, where r refreshes nothing', () => {
    const nodes = press(loaded, 'n');
    expect(nodes.view).toBe('nodes');
    const r = update(nodes, { kind: 'char', char: 'r' });
    expect(r.effect).toBeUndefined();
    expect(r.state.message).toMatch(/press n/);
    expect(press(nodes, 'n').view).toBe('tables');
  });

  it('opens the help with ? and closes it with any key; q quits from anywhere', () => {
    const help = press(loaded, '?');
    expect(help.help).toBe(true);
    expect(press(help, 'x').help).toBe(false);
    expect(update(help, { kind: 'char', char: 'q' }).effect).toEqual({ kind: 'quit' });
  });
});

describe('the screen of pgtrickle top', () => {
  const view = { width: 150, height: 12, now: NOW };

  it('shows one row per stream table with its sparkline, the selection marked, in the height given', () => {
    const lines = render(loaded, view);
    expect(lines).toHaveLength(12);
    expect(lines[0]).toContain('pgtrickle top · app · 2 stream tables · 0 nodes alive');
    expect(lines[2]?.startsWith(`${INVERSE}> `)).toBe(true);
    expect(lines[2]).toMatch(/> public\.orders_by_day +ACTIVE +AUTO→DIFFERENTIAL +1m +2\.0s +80ms +▁▂▄█ /);
    expect(lines[3]).toMatch(/^ {2}public\.top +ACTIVE/);
    expect(lines.at(-1)).toMatch(/^↑↓ select {2}r refresh {2}\/ filter {2}n nodes/);
  });

  it('lists nodes and leases in the nodes view', () => {
    const state: TopState = {
      ...press(loaded, 'n'),
      members: new Map([
        [
          'n1',
          { node: 'n1', host: 'h', pid: 7, startedAt: NOW - 60_000, expiresAt: NOW + 5_000, draining: false },
        ],
      ]),
      leases: new Map([
        ['3', { key: 'lease.3', holder: 'n1', epoch: 4, expiresAt: NOW + 3_000, revision: 1 }],
      ]),
    };
    const lines = render(state, view);
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}n1 +alive +1 +0 +h +7 +1m00s/));
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}public\.top +n1 +4 +in 3\.0s/));
  });
});
