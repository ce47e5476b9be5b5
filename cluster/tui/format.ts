// Pure text helpers shared by `status` and `top`: durations, modes, sparklines and columns.

/** 850ms, 3.2s, 4m05s, 2h03m, 3d04h: short enough for a column, exact enough to compare. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const abs = Math.max(0, ms);
  if (abs < 1_000) return `${Math.round(abs)}ms`;
  if (abs < 60_000) return `${(abs / 1_000).toFixed(1)}s`;
  const s = Math.floor(abs / 1_000);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3_600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3_600)}h${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor(s / 3_600) % 24)}h`;
}

/** `1 change`, `2 changes`: counts in sentences people read. */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** The mode asked for, and what refreshes really do when that differs (AUTO→FULL). */
export function formatMode(refreshMode: string, effectiveMode: string | null): string {
  return effectiveMode === null || effectiveMode === refreshMode
    ? refreshMode
    : `${refreshMode}→${effectiveMode}`;
}

const BARS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/**
 * One bar per value, scaled from 0 to the largest: a latency twice another is a bar about twice
 * as high, and jitter of a few percent does not look like a spike.
 */
export function sparkline(values: readonly number[]): string {
  const max = Math.max(0, ...values);
  return values
    .map((v) => {
      if (max <= 0 || !(v > 0)) return BARS[0];
      return BARS[Math.min(BARS.length - 1, Math.max(0, Math.ceil((v / max) * BARS.length) - 1))];
    })
    .join('');
}

/** Code points, not UTF-16 units: the box and bar characters are one column each. */
export function width(text: string): number {
  return [...text].length;
}

export function fitTo(text: string, columns: number): string {
  const chars = [...text];
  if (chars.length <= columns) return text + ' '.repeat(columns - chars.length);
  return columns <= 1 ? chars.slice(0, columns).join('') : `${chars.slice(0, columns - 1).join('')}…`;
}

/** Columns as wide as their widest cell, two spaces apart; the last one is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : fitTo(c, widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}
