// Markdown tables of side-by-side refresh timings, and each section's median FULL/DIFFERENTIAL
// ratio. Pure: results in, text out.
import type { Cell } from '../refresh-matrix.js';
import type { PairResult } from './pairs.js';

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '–');
// Two significant digits below 1, so that 0.02× and 0.004× stay apart.
const ratio = (v: number) => {
  if (!Number.isFinite(v)) return '–';
  return `${v >= 1 ? v.toFixed(1) : v.toPrecision(2)}×`;
};
const count = (v: number) => (Number.isFinite(v) ? String(v) : '–');
const cellText = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/**
 * A pair's figures: medians over its cycles, ratio of the medians. A DIFFERENTIAL refresh
 * cancelled at the limit counts with the limit as its time, so its ratio is an upper bound.
 */
export interface PairFigures {
  fullMs: number;
  diffMs: number;
  ratio: number;
  bounded: boolean;
  /** Compiled to DIFFERENTIAL, and every completed cycle's AUTO refresh ran DIFFERENTIAL. */
  differential: boolean;
}

export function pairFigures(r: PairResult): PairFigures {
  const full = r.samples.map((s) => s.fullMs);
  const diff = r.samples.map((s) => s.diffMs);
  if (r.overLimit) {
    full.push(r.overLimit.fullMs);
    diff.push(r.overLimit.limitMs);
  }
  const fullMs = median(full);
  const diffMs = median(diff);
  return {
    fullMs,
    diffMs,
    ratio: fullMs / diffMs,
    bounded: r.overLimit !== undefined,
    differential: r.compiled === 'DIFFERENTIAL' && r.samples.every((s) => s.diffAction === 'DIFFERENTIAL'),
  };
}

/** Median ratio over the pairs that refreshed DIFFERENTIAL, and over every pair with samples. */
export function pairMedians(results: readonly PairResult[]): {
  differential: number;
  all: number;
  n: number;
} {
  const figures = results.filter((r) => r.samples.length > 0 || r.overLimit).map(pairFigures);
  const diff = figures.filter((f) => f.differential);
  return {
    differential: median(diff.map((f) => f.ratio)),
    all: median(figures.map((f) => f.ratio)),
    n: diff.length,
  };
}

function actions(r: PairResult): string {
  const seen = [...new Set(r.samples.map((s) => s.diffAction))];
  return seen.length > 0 ? seen.join(', ') : '–';
}

export function pairTable(results: readonly PairResult[]): string {
  const rows = results.map((r) => {
    const f = pairFigures(r);
    const compiled = r.compiled === 'DIFFERENTIAL' ? `DIFFERENTIAL (${r.strategy})` : 'FULL';
    return [
      r.id,
      compiled,
      actions(r),
      ms(f.fullMs),
      f.bounded ? `≥ ${ms(f.diffMs)}` : ms(f.diffMs),
      f.bounded ? `≤ ${ratio(f.ratio)}` : ratio(f.ratio),
      count(median(r.samples.map((s) => s.changesConsumed))),
      count(median(r.samples.map((s) => s.rowsChanged))),
      r.divergence === undefined ? '–' : String(r.divergence),
      r.error ? cellText(r.error) : '',
    ];
  });
  return table(
    [
      'query',
      'compiled',
      'AUTO refresh ran',
      'FULL ms',
      'DIFF ms',
      'FULL/DIFF',
      'changes consumed',
      'ST rows changed',
      'divergent rows',
      'note',
    ],
    rows,
  );
}

/** The fallback reasons of the pairs compiled to FULL, grouped by reason. */
export function fallbackList(results: readonly PairResult[]): string {
  const byReason = new Map<string, string[]>();
  for (const r of results) {
    if (r.compiled !== 'FULL') continue;
    const reason = r.fallbackReason ?? 'unknown';
    byReason.set(reason, [...(byReason.get(reason) ?? []), r.id]);
  }
  if (byReason.size === 0) return 'Every query compiled to DIFFERENTIAL.';
  return [...byReason].map(([reason, ids]) => `- ${ids.join(', ')}: ${cellText(reason)}`).join('\n');
}

export function matrixMedian(cells: readonly Cell[]): number {
  return median(cells.filter((c) => c.diffAction === 'DIFFERENTIAL').map((c) => c.fullMs / c.diffMs));
}

export function matrixTable(cells: readonly Cell[]): string {
  return table(
    [
      'scenario',
      'rows',
      'change',
      'FULL ms',
      'DIFF ms',
      'FULL/DIFF',
      'source rows changed',
      'DIFF ran',
      'divergent rows',
    ],
    cells.map((c) => [
      c.scenario,
      String(c.rows),
      `${c.ratePct}%`,
      ms(c.fullMs),
      ms(c.diffMs),
      ratio(c.fullMs / c.diffMs),
      String(Math.max(1, Math.round((c.rows * c.ratePct) / 100))),
      c.diffAction,
      c.divergence === null ? '–' : String(c.divergence),
    ]),
  );
}

export { ratio as formatRatio };
