// The state of `pgtrickle top` and how keys change it: pure, so every key is unit-testable.
// Effects (refresh a stream table, quit) are returned for the caller to run.

import type { StatusRow } from '../cli/catalog.js';
import type { Lease, Member } from '../nats/index.js';

/** The stream tables one row each, or the nodes with the leases they hold. */
export type View = 'tables' | 'nodes';

export interface TopState {
  readonly db: string;
  readonly view: View;
  readonly rows: readonly StatusRow[];
  /** membership of the cluster, by node id (NATS KV `node.<id>`) */
  readonly members: ReadonlyMap<string, Member>;
  /** leases by stream table id (NATS KV `lease.<pgt_id>`) */
  readonly leases: ReadonlyMap<string, Lease>;
  /** a stream table is selected by name, so it stays selected when rows come and go */
  readonly selected: string | undefined;
  readonly filter: string;
  readonly editingFilter: boolean;
  readonly help: boolean;
  /** the outcome of the last action, or what is wrong with a connection */
  readonly message: string | undefined;
  /** the NATS connection as the header shows it: connecting, connected, or what went wrong */
  readonly nats: string;
  /** epoch ms of the last catalog read */
  readonly loadedAt: number | undefined;
}

export function initialState(db: string): TopState {
  return {
    db,
    view: 'tables',
    rows: [],
    members: new Map(),
    leases: new Map(),
    selected: undefined,
    filter: '',
    editingFilter: false,
    help: false,
    message: undefined,
    nats: 'connecting',
    loadedAt: undefined,
  };
}

export type Key =
  | { kind: 'up' }
  | { kind: 'down' }
  | { kind: 'enter' }
  | { kind: 'escape' }
  | { kind: 'backspace' }
  | { kind: 'interrupt' }
  | { kind: 'char'; char: string };

export type Effect = { kind: 'refresh'; name: string } | { kind: 'quit' };

/** Rows the filter lets through: a case-insensitive substring of the name. */
export function visibleRows(state: TopState): readonly StatusRow[] {
  if (state.filter === '') return state.rows;
  const needle = state.filter.toLowerCase();
  return state.rows.filter((r) => r.name.toLowerCase().includes(needle));
}

/** The selected row, or the first visible one when the selection is filtered out or gone. */
export function selectedRow(state: TopState): StatusRow | undefined {
  const rows = visibleRows(state);
  return rows.find((r) => r.name === state.selected) ?? rows[0];
}

function move(state: TopState, by: number): TopState {
  const rows = visibleRows(state);
  if (rows.length === 0) return state;
  const current = selectedRow(state);
  const index = current === undefined ? 0 : rows.indexOf(current);
  const next = rows[Math.min(rows.length - 1, Math.max(0, index + by))];
  return { ...state, selected: next?.name };
}

export function withRows(state: TopState, rows: readonly StatusRow[], now: number): TopState {
  return { ...state, rows, loadedAt: now };
}

export function update(state: TopState, key: Key): { state: TopState; effect?: Effect } {
  if (key.kind === 'interrupt') return { state, effect: { kind: 'quit' } };
  if (state.editingFilter) {
    switch (key.kind) {
      case 'enter':
        return { state: { ...state, editingFilter: false } };
      case 'escape':
        return { state: { ...state, editingFilter: false, filter: '' } };
      case 'backspace':
        return { state: { ...state, filter: [...state.filter].slice(0, -1).join('') } };
      case 'char':
        return { state: { ...state, filter: state.filter + key.char } };
      default:
        return { state };
    }
  }
  if (state.help) {
    // Any key closes the help; q still quits from it.
    if (key.kind === 'char' && key.char === 'q') return { state, effect: { kind: 'quit' } };
    return { state: { ...state, help: false } };
  }
  switch (key.kind) {
    case 'up':
      return { state: move(state, -1) };
    case 'down':
      return { state: move(state, 1) };
    case 'escape':
      return { state: { ...state, filter: '', message: undefined } };
    case 'char':
      switch (key.char) {
        case 'q':
          return { state, effect: { kind: 'quit' } };
        case 'k':
          return { state: move(state, -1) };
        case 'j':
          return { state: move(state, 1) };
        case '?':
          return { state: { ...state, help: true } };
        case 'n':
          return { state: { ...state, view: state.view === 'nodes' ? 'tables' : 'nodes' } };
        case '/':
          return { state: { ...state, editingFilter: true, filter: '' } };
        case 'r': {
          if (state.view === 'nodes')
            return { state: { ...state, message: 'press n for the stream tables, then r' } };
          const row = selectedRow(state);
          if (row === undefined) return { state: { ...state, message: 'no stream table to refresh' } };
          return {
            state: { ...state, selected: row.name, message: `refreshing ${row.name}…` },
            effect: { kind: 'refresh', name: row.name },
          };
        }
        default:
          return { state };
      }
    default:
      return { state };
  }
}

/** Splits raw terminal input into keys; escape sequences for the arrows, raw bytes otherwise. */
export function parseKeys(input: string): Key[] {
  // Code points, so a non-BMP character typed into the filter stays one key.
  const chars = [...input];
  const keys: Key[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i] as string;
    if (ch === '\x1b') {
      const seq = chars.slice(i, i + 3).join('');
      if (seq === '\x1b[A' || seq === '\x1bOA') {
        keys.push({ kind: 'up' });
        i += 2;
      } else if (seq === '\x1b[B' || seq === '\x1bOB') {
        keys.push({ kind: 'down' });
        i += 2;
      } else if (chars[i + 1] === '[' || chars[i + 1] === 'O') {
        // Another sequence (right, left, function keys): skip it whole.
        let j = i + 2;
        while (j < chars.length && !/[A-Za-z~]/.test(chars[j] as string)) j++;
        i = j;
      } else {
        keys.push({ kind: 'escape' });
      }
    } else if (ch === '\r' || ch === '\n') keys.push({ kind: 'enter' });
    else if (ch === '\x7f' || ch === '\b') keys.push({ kind: 'backspace' });
    else if (ch === '\x03') keys.push({ kind: 'interrupt' });
    else if (ch >= ' ') keys.push({ kind: 'char', char: ch });
  }
  return keys;
}
