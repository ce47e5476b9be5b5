// The screen of `pgtrickle top` as a pure function of its state, the terminal size and the
// clock: state → lines. The only escapes it emits are inverse video for the header and the
// selected row; screen.ts does the cursor work.

import type { StatusRow } from '../cli/catalog.js';
import { isExpired } from '../nats/index.js';
import { fitTo, formatDuration, formatMode, sparkline, width } from './format.js';
import { selectedRow, type TopState, visibleRows } from './state.js';

export interface Viewport {
  readonly width: number;
  readonly height: number;
  /** epoch ms */
  readonly now: number;
}

const SPARK_WIDTH = 20;

const INVERSE = '\x1b[7m';
const RESET = '\x1b[0m';
const NODE_WIDTHS = [28, 9, 13, 14, 20, 8, 8];
const LEASE_WIDTHS = [40, 28, 6, 10];

const HELP = [
  'pgtrickle top: one row per stream table, refreshed on every NATS event and polled as a fallback.',
  '',
  '  ↑ ↓ (or k j)   select a stream table',
  '  r              refresh the selected stream table now (pgtrickle.refresh_stream_table)',
  '  /              filter by name; Enter keeps the filter, Esc clears it',
  '  n              switch between stream tables and nodes (members and the leases they hold)',
  '  Esc            clear the filter and the message',
  '  ?              this help; any key closes it',
  '  q              quit',
  '',
  'Columns: STALENESS is now minus the data timestamp; LAST is the duration of the latest refresh;',
  `LATENCY shows the last ${SPARK_WIDTH} refresh durations, oldest first, scaled from 0 to the largest;`,
  'NODE holds the lease of the stream table ("expired" when it was not renewed in time).',
  'Nodes: STATE is alive, draining (handing over), dead (no heartbeat) or gone (left, leases remain).',
];

function nodesView(state: TopState, view: Viewport, w: number): string[] {
  const nodes = nodeLines(state, view.now);
  const names = new Map(state.rows.map((r) => [r.id, r.name]));
  const leases = [...state.leases.entries()]
    .map(([id, lease]) => ({ name: names.get(id) ?? `pgt_id ${id}`, lease }))
    .sort((a, b) => a.lease.holder.localeCompare(b.lease.holder) || a.name.localeCompare(b.name));
  return [
    clip(
      `  ${line(['NODE', 'STATE', 'STREAM TABLES', 'EXPIRED LEASES', 'HOST', 'PID', 'UP'], NODE_WIDTHS)}`,
      w,
    ),
    ...(nodes.length === 0
      ? ['  (no nodes in the cluster bucket)']
      : nodes.map((n) =>
          clip(
            `  ${line([n.node, n.state, String(n.held), String(n.expired), n.host, n.pid, n.up], NODE_WIDTHS)}`,
            w,
          ),
        )),
    '',
    clip(`  ${line(['STREAM TABLE', 'LEASE HOLDER', 'EPOCH', 'EXPIRES'], LEASE_WIDTHS)}`, w),
    ...(leases.length === 0
      ? ['  (no leases)']
      : leases.map(({ name, lease }) =>
          clip(
            `  ${line(
              [
                name,
                lease.holder,
                String(lease.epoch),
                isExpired(lease, view.now)
                  ? `${formatDuration(view.now - lease.expiresAt)} ago`
                  : `in ${formatDuration(lease.expiresAt - view.now)}`,
              ],
              LEASE_WIDTHS,
            )}`,
            w,
          ),
        )),
  ];
}

interface Column {
  readonly title: string;
  readonly width: number;
  readonly cell: (row: StatusRow) => string;
}

interface NodeLine {
  readonly node: string;
  readonly state: string;
  readonly held: number;
  readonly expired: number;
  readonly host: string;
  readonly pid: string;
  readonly up: string;
}

function leaseHolder(state: TopState, row: StatusRow, now: number): string {
  const lease = state.leases.get(row.id);
  if (lease === undefined) return '-';
  return isExpired(lease, now) ? `${lease.holder} (expired)` : lease.holder;
}

export function nodeLines(state: TopState, now: number): NodeLine[] {
  const ids = new Set([...state.members.keys(), ...[...state.leases.values()].map((l) => l.holder)]);
  return [...ids].sort().map((node) => {
    const member = state.members.get(node);
    let held = 0;
    let expired = 0;
    for (const lease of state.leases.values()) {
      if (lease.holder !== node) continue;
      if (isExpired(lease, now)) expired++;
      else held++;
    }
    return {
      node,
      state:
        member === undefined
          ? 'gone'
          : member.expiresAt <= now
            ? 'dead'
            : member.draining
              ? 'draining'
              : 'alive',
      held,
      expired,
      host: member?.host ?? '-',
      pid: member === undefined ? '-' : String(member.pid),
      up: member === undefined ? '-' : formatDuration(now - member.startedAt),
    };
  });
}

function columns(state: TopState, view: Viewport): Column[] {
  const fixed: Column[] = [
    { title: 'STATUS', width: 12, cell: (r) => r.status },
    { title: 'MODE', width: 17, cell: (r) => formatMode(r.refreshMode, r.effectiveMode) },
    { title: 'SCHEDULE', width: 10, cell: (r) => r.schedule ?? 'calculated' },
    {
      title: 'STALENESS',
      width: 9,
      cell: (r) => (r.dataTimestamp === null ? '-' : formatDuration(view.now - r.dataTimestamp)),
    },
    {
      title: 'LAST',
      width: 7,
      cell: (r) => (r.lastRefresh === null ? '-' : formatDuration(r.lastRefresh.durationMs)),
    },
    { title: 'LATENCY', width: SPARK_WIDTH, cell: (r) => sparkline(r.latencies.slice(-SPARK_WIDTH)) },
    { title: 'ERR', width: 3, cell: (r) => String(r.consecutiveErrors) },
    { title: 'NODE', width: 14, cell: (r) => leaseHolder(state, r, view.now) },
  ];
  // The name takes what is left, between 12 and 40 columns; below that the last columns are cut.
  const rest = view.width - 2 - fixed.length - fixed.reduce((n, c) => n + c.width, 0);
  const nameWidth = Math.max(12, Math.min(40, rest));
  return [{ title: 'NAME', width: nameWidth, cell: (r) => r.name }, ...fixed];
}

function line(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((c, i) => fitTo(c, widths[i] ?? 0)).join(' ');
}

function clip(text: string, columns: number): string {
  return width(text) <= columns ? text : fitTo(text, columns);
}

export function render(state: TopState, view: Viewport): string[] {
  const w = Math.max(20, view.width);
  const h = Math.max(5, view.height);
  const rows = visibleRows(state);
  const nodes = nodeLines(state, view.now);
  const header =
    `pgtrickle top · ${state.db} · ${state.rows.length} stream tables · ` +
    `${nodes.filter((n) => n.state === 'alive').length} nodes alive · NATS ${state.nats}` +
    (state.loadedAt === undefined ? ' · loading…' : '');
  const out: string[] = [`${INVERSE}${fitTo(header, w)}${RESET}`];

  const footer = state.editingFilter
    ? `/${state.filter}▏`
    : `↑↓ select  r refresh  / filter  n ${state.view === 'nodes' ? 'tables' : 'nodes'}  ? help  q quit${state.filter ? `   filter: ${state.filter}` : ''}`;
  const bottom = [...(state.message ? [state.message] : []), footer].map((l) => clip(l, w));

  if (state.help) {
    out.push('', ...HELP.map((l) => clip(l, w)));
    while (out.length < h - bottom.length) out.push('');
    return [...out.slice(0, h - bottom.length), ...bottom];
  }

  if (state.view === 'nodes') {
    out.push('', ...nodesView(state, view, w));
    while (out.length < h - bottom.length) out.push('');
    return [...out.slice(0, h - bottom.length), ...bottom];
  }

  const cols = columns(state, view);
  const widths = cols.map((c) => c.width);
  out.push(
    clip(
      `  ${line(
        cols.map((c) => c.title),
        widths,
      )}`,
      w,
    ),
  );
  const room = Math.max(1, h - out.length - bottom.length);
  const selected = selectedRow(state);
  const index = selected === undefined ? 0 : rows.indexOf(selected);
  // Scroll just enough to keep the selection on screen.
  const start = Math.max(0, Math.min(index - room + 1, rows.length - room));
  const shown = rows.slice(Math.max(0, start), Math.max(0, start) + room);
  if (rows.length === 0) {
    out.push(
      state.loadedAt === undefined
        ? '  loading…'
        : state.filter
          ? `  no stream table matches "${state.filter}"`
          : '  no stream tables',
    );
  }
  for (const row of shown) {
    const text = fitTo(
      `  ${line(
        cols.map((c) => c.cell(row)),
        widths,
      )}`,
      w,
    );
    out.push(row === selected ? `${INVERSE}>${text.slice(1)}${RESET}` : text);
  }
  while (out.length < h - bottom.length) out.push('');
  return [...out.slice(0, h - bottom.length), ...bottom];
}
