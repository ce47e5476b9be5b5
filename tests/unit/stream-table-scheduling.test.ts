import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF_CONFIG, ON_SCHEDULE } from '../../actors/backoff/index.js';
import {
  afterFailure,
  afterSuccess,
  dueAt,
  isPaused,
  nextStep,
  wasLate,
  withFacts,
} from '../../actors/stream-table/index.js';
import type { ConcreteSchedule } from '../../shared/schedule/index.js';

const tenSeconds: ConcreteSchedule = { kind: 'interval', ms: 10_000 };
const facts = {
  status: 'ACTIVE',
  needsReinit: false,
  populated: true,
  workPending: true,
  schedule: tenSeconds,
  lastRefreshAt: 0,
  pace: ON_SCHEDULE,
} as const;
const auto = DEFAULT_BACKOFF_CONFIG.auto;
const differential = { action: 'DIFFERENTIAL', rowsInserted: 1, rowsDeleted: 0, durationMs: 5 } as const;

describe('nextStep', () => {
  it('refreshes once due when there is work, and waits otherwise', () => {
    expect(nextStep(facts, 9_999)).toBe('wait');
    expect(nextStep(facts, 10_000)).toBe('refresh');
    expect(nextStep({ ...facts, workPending: false }, 10_000)).toBe('wait');
  });

  it('fills a stream table never populated without waiting for changes', () => {
    expect(nextStep({ ...facts, workPending: false, populated: false, lastRefreshAt: undefined }, 5)).toBe(
      'refresh',
    );
  });

  it('rebuilds at once, due or not, and pauses before anything else', () => {
    expect(nextStep({ ...facts, needsReinit: true }, 1)).toBe('reinit');
    expect(nextStep({ ...facts, needsReinit: true, status: 'SUSPENDED' }, 10_000)).toBe('suspend');
    expect(nextStep({ ...facts, status: 'ERROR' }, 10_000)).toBe('suspend');
  });

  it('waits the slowed-down interval under auto_backoff', () => {
    const slowed = { ...facts, pace: { lateCycles: 3, slowdown: 2 } };
    expect(dueAt(slowed, 0)).toBe(20_000);
    expect(nextStep(slowed, 10_000)).toBe('wait');
    expect(nextStep(slowed, 20_000)).toBe('refresh');
  });
});

describe('isPaused', () => {
  it('pauses SUSPENDED and ERROR stream tables only', () => {
    expect(['INITIALIZING', 'ACTIVE', 'SUSPENDED', 'ERROR'].map((s) => isPaused(s as never))).toEqual([
      false,
      false,
      true,
      true,
    ]);
  });
});

describe('wasLate', () => {
  it('is late when the refresh ends after the next due time of the configured schedule', () => {
    expect(wasLate(tenSeconds, 0, 10_000)).toBe(false);
    expect(wasLate(tenSeconds, 0, 10_001)).toBe(true);
    const cron: ConcreteSchedule = { kind: 'cron', expression: '* * * * *' };
    const start = Date.parse('2024-01-01T00:00:00Z');
    expect(wasLate(cron, start, start + 59_000)).toBe(false);
    expect(wasLate(cron, start, start + 61_000)).toBe(true);
  });
});

describe('afterSuccess', () => {
  const st = { schedule: tenSeconds, pace: { lateCycles: 2, slowdown: 1 }, populated: true };

  it('counts the refresh from its start, resets failures and advances the pace', () => {
    const { update, late } = afterSuccess(st, 'refresh', differential, 1_000, 12_000, auto);
    expect(late).toBe(true);
    expect(update).toEqual({
      lastRefreshAt: 1_000,
      populated: true,
      consecutiveFailures: 0,
      pace: { lateCycles: 3, slowdown: 2 },
    });
  });

  it('leaves the pace alone after a reinit', () => {
    const reinit = { ...differential, action: 'REINITIALIZE' } as const;
    expect(afterSuccess(st, 'reinit', reinit, 0, 60_000, auto).update.pace).toBe(st.pace);
  });

  it('only moves the last refresh time when another session held the lock', () => {
    const busy = { action: 'SKIPPED', busy: true } as const;
    const { update, late } = afterSuccess(st, 'refresh', busy, 1_000, 60_000, auto);
    expect(update).toEqual({ lastRefreshAt: 1_000 });
    expect(late).toBe(false);
  });

  it('changes nothing when the refresh committed nothing else (nothing new, a group not locked)', () => {
    const { update, late } = afterSuccess(st, 'refresh', { action: 'SKIPPED' }, 1_000, 60_000, auto);
    expect(update).toEqual({});
    expect(late).toBe(false);
  });

  it('counts a skipped first fill as the slot served, so that it does not retry at once', () => {
    const empty = { ...st, populated: false };
    const { update } = afterSuccess(empty, 'refresh', { action: 'SKIPPED' }, 1_000, 60_000, auto);
    expect(update).toEqual({ lastRefreshAt: 1_000 });
  });
});

describe('afterFailure', () => {
  it('counts the failure and keeps the claimed work to do', () => {
    expect(afterFailure({ consecutiveFailures: 2 }, 'refresh')).toEqual({
      consecutiveFailures: 3,
      workPending: true,
    });
    expect(afterFailure({ consecutiveFailures: 0 }, 'reinit')).toEqual({
      consecutiveFailures: 1,
      needsReinit: true,
    });
  });
});

describe('withFacts', () => {
  const st = { schedule: tenSeconds, pace: { lateCycles: 4, slowdown: 4 } };
  const fresh = { name: 'public.t', status: 'ACTIVE', needsReinit: false } as const;

  it('keeps the pace when the schedule is the same and resets it when it changed', () => {
    expect(withFacts(st, { ...fresh, schedule: { kind: 'interval', ms: 10_000 } }).pace).toBe(st.pace);
    expect(withFacts(st, { ...fresh, schedule: { kind: 'interval', ms: 5_000 } }).pace).toEqual(ON_SCHEDULE);
    expect(withFacts(st, { ...fresh, schedule: { kind: 'cron', expression: '@hourly' } }).pace).toEqual(
      ON_SCHEDULE,
    );
  });
});
