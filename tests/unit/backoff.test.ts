import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  backoffConfig,
  DEFAULT_BACKOFF_CONFIG,
  failureDelayMs,
  nextPace,
  ON_SCHEDULE,
  type Pace,
} from '../../actors/backoff/index.js';
import { PgTrickleError } from '../../shared/errors/index.js';
import { catchError } from './catch-error.js';

const noJitterTop = () => 0.999_999_999;
const config = { baseMs: 1_000, capMs: 60_000 } as const;

describe('failureDelayMs', () => {
  it('doubles from the base with each failure and stops at the cap', () => {
    const full = { ...config, jitter: 'full' } as const;
    const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((failures) => failureDelayMs(failures, full, noJitterTop));
    expect(delays).toEqual([999, 1_999, 3_999, 7_999, 15_999, 31_999, 59_999, 59_999]);
  });

  it('stays at the cap after very many failures', () => {
    const delay = failureDelayMs(10_000, { ...config, jitter: 'full' }, noJitterTop);
    expect(delay).toBe(59_999);
  });

  it('keeps at least half of the delay with equal jitter', () => {
    const equal = { ...config, jitter: 'equal' } as const;
    expect(failureDelayMs(3, equal, () => 0)).toBe(2_000);
    expect(failureDelayMs(3, equal, () => 0.5)).toBe(3_000);
    expect(failureDelayMs(3, equal, noJitterTop)).toBe(3_999);
  });

  it('may retry at once with full jitter', () => {
    expect(failureDelayMs(3, { ...config, jitter: 'full' }, () => 0)).toBe(0);
  });

  it('waits nothing before the first failure', () => {
    expect(failureDelayMs(0, DEFAULT_BACKOFF_CONFIG.failure, () => 0.5)).toBe(0);
  });

  it('never reaches the ceiling with a draw just below 1 (fast-check seed 47485040)', () => {
    const equal = { baseMs: 2_049, capMs: 2_049, jitter: 'equal' } as const;
    expect(failureDelayMs(1, equal, () => 0.999_999_999_999_999_8)).toBe(2_048);
  });

  it('stays within [0, d) for full jitter and [d/2, d) for equal jitter', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        (failures, draw, baseMs, extra) => {
          const capMs = baseMs + extra;
          const ceiling = Math.min(capMs, baseMs * 2 ** (failures - 1));
          const full = failureDelayMs(failures, { baseMs, capMs, jitter: 'full' }, () => draw);
          const equal = failureDelayMs(failures, { baseMs, capMs, jitter: 'equal' }, () => draw);
          expect(full).toBeGreaterThanOrEqual(0);
          expect(full).toBeLessThan(ceiling);
          expect(equal).toBeGreaterThanOrEqual(Math.floor(ceiling / 2));
          expect(equal).toBeLessThan(ceiling);
        },
      ),
    );
  });
});

describe('nextPace (auto_backoff)', () => {
  const auto = DEFAULT_BACKOFF_CONFIG.auto;
  const run = (lateness: boolean[], settings = auto): Pace[] => {
    const paces: Pace[] = [];
    let pace = ON_SCHEDULE;
    for (const late of lateness) {
      pace = nextPace(pace, late, settings);
      paces.push(pace);
    }
    return paces;
  };

  it('doubles the interval after three late cycles and resets when on time', () => {
    const slowdowns = run([true, true, true, true, false]).map((pace) => pace.slowdown);
    expect(slowdowns).toEqual([1, 1, 2, 4, 1]);
  });

  it('keeps doubling while late, up to the cap', () => {
    const paces = run(Array.from({ length: 8 }, () => true));
    expect(paces.map((pace) => pace.slowdown)).toEqual([1, 1, 2, 4, 8, 8, 8, 8]);
    expect(paces.at(-1)?.lateCycles).toBe(8);
  });

  it('starts counting again after one refresh on time', () => {
    const slowdowns = run([true, true, false, true, true, true]).map((pace) => pace.slowdown);
    expect(slowdowns).toEqual([1, 1, 1, 1, 1, 2]);
  });

  it('counts late cycles but never slows down when disabled', () => {
    const paces = run([true, true, true, true], { ...auto, enabled: false });
    expect(paces.at(-1)).toEqual({ lateCycles: 4, slowdown: 1 });
  });

  it('follows a configured threshold and cap', () => {
    const paces = run(
      Array.from({ length: 8 }, () => true),
      {
        enabled: true,
        lateCyclesBeforeSlowdown: 1,
        maxSlowdown: 64,
      },
    );
    expect(paces.map((pace) => pace.slowdown)).toEqual([2, 4, 8, 16, 32, 64, 64, 64]);
  });
});

describe('backoffConfig', () => {
  it('turns auto_backoff on by default and overlays what is given', () => {
    expect(backoffConfig()).toEqual(DEFAULT_BACKOFF_CONFIG);
    expect(DEFAULT_BACKOFF_CONFIG.auto.enabled).toBe(true);
    const config = backoffConfig({ failure: { capMs: 5_000 }, auto: { enabled: false } });
    expect(config.failure).toEqual({ ...DEFAULT_BACKOFF_CONFIG.failure, capMs: 5_000 });
    expect(config.auto).toEqual({ ...DEFAULT_BACKOFF_CONFIG.auto, enabled: false });
  });

  it('refuses settings no schedule can use, as CONFIG_INVALID', () => {
    for (const overrides of [
      { failure: { baseMs: 0 } },
      { failure: { baseMs: 10_000, capMs: 5_000 } },
      { auto: { lateCyclesBeforeSlowdown: 0 } },
      { auto: { maxSlowdown: 0.5 } },
    ]) {
      const error = catchError(() => backoffConfig(overrides));
      expect(error).toBeInstanceOf(PgTrickleError);
      expect(error).toMatchObject({ code: 'CONFIG_INVALID' });
    }
  });
});
