import { describe, expect, it } from 'vitest';
import { nextDue, parseSchedule, periodMs, ScheduleInvalid } from '../../shared/schedule/index.js';
import { catchError } from './catch-error.js';

const at = (iso: string) => Date.parse(iso);

describe('parseSchedule', () => {
  it('reads durations in ms, s, m, h and d, compound ones included', () => {
    expect(parseSchedule('500ms')).toEqual({ kind: 'interval', ms: 500 });
    expect(parseSchedule('30s')).toEqual({ kind: 'interval', ms: 30_000 });
    expect(parseSchedule('5m')).toEqual({ kind: 'interval', ms: 300_000 });
    expect(parseSchedule('1h30m')).toEqual({ kind: 'interval', ms: 5_400_000 });
    expect(parseSchedule('1d')).toEqual({ kind: 'interval', ms: 86_400_000 });
    expect(parseSchedule('1m30s500ms')).toEqual({ kind: 'interval', ms: 90_500 });
  });

  it('accepts zero parts in a duration that is greater than zero overall, like the SQL API', () => {
    expect(parseSchedule('0h5m')).toEqual({ kind: 'interval', ms: 300_000 });
  });

  it('trims spaces around the text, as btrim does', () => {
    expect(parseSchedule('  30s ')).toEqual({ kind: 'interval', ms: 30_000 });
  });

  it('reads CALCULATED in any case, and NULL, as calculated', () => {
    for (const text of ['calculated', 'CALCULATED', ' Calculated ', null]) {
      expect(parseSchedule(text)).toEqual({ kind: 'calculated' });
    }
  });

  it('reads every macro case-insensitively and keeps it lower-case', () => {
    for (const macro of ['@hourly', '@daily', '@weekly', '@monthly', '@yearly', '@annually', '@midnight']) {
      expect(parseSchedule(macro.toUpperCase())).toEqual({ kind: 'cron', expression: macro });
    }
  });

  it('reads cron expressions of five and six fields and collapses their whitespace', () => {
    expect(parseSchedule('*/5 * * * *')).toEqual({ kind: 'cron', expression: '*/5 * * * *' });
    expect(parseSchedule('*/10 * * * * *')).toEqual({ kind: 'cron', expression: '*/10 * * * * *' });
    expect(parseSchedule('0  9\t* *   MON-FRI')).toEqual({ kind: 'cron', expression: '0 9 * * MON-FRI' });
    expect(parseSchedule('0 0 L * ?')).toEqual({ kind: 'cron', expression: '0 0 L * ?' });
    expect(parseSchedule('0 0 * * 5#2')).toEqual({ kind: 'cron', expression: '0 0 * * 5#2' });
  });

  it('refuses what the SQL API refuses', () => {
    const refused = [
      '',
      '   ',
      '0s',
      '0ms0m',
      '5',
      '5M',
      '5 m',
      '-5s',
      '1.5s',
      '5min',
      '\t30s',
      '* * * *',
      '* * * * * * *',
      '@reboot',
      '@every 5m',
      'hourly',
      'every minute',
    ];
    for (const text of refused) {
      expect(() => parseSchedule(text), text).toThrow(ScheduleInvalid);
    }
  });

  it('also refuses cron text the SQL pattern lets through but no clock can evaluate', () => {
    expect(() => parseSchedule('99 * * * *')).toThrow(/invalid schedule "99 \* \* \* \*": .*minute/);
    expect(() => parseSchedule('0 0 30 2 *')).toThrow(/never fires/);
  });

  it('refuses a zero duration with the reason and a hint, under a stable code', () => {
    const error = catchError(() => parseSchedule('0m'));
    expect(error).toBeInstanceOf(ScheduleInvalid);
    expect(error).toMatchObject({
      code: 'SCHEDULE_INVALID',
      name: 'ScheduleInvalid',
      text: '0m',
      message: 'invalid schedule "0m": the interval must be greater than zero',
    });
    expect((error as ScheduleInvalid).hint).toContain("'1h30m'");
  });

  it('refuses a duration too long to add up exactly', () => {
    expect(() => parseSchedule('99999999999999999999d')).toThrow(/too long/);
  });
});

describe('nextDue', () => {
  const fiveMinutes = { kind: 'cron', expression: '*/5 * * * *' } as const;

  it('is due now when the stream table was never refreshed', () => {
    const now = at('2024-01-01T00:02:00Z');
    expect(nextDue({ kind: 'interval', ms: 30_000 }, undefined, now)).toBe(now);
    expect(nextDue(fiveMinutes, undefined, now)).toBe(now);
  });

  it('adds the interval to the last refresh, times the slowdown', () => {
    expect(nextDue({ kind: 'interval', ms: 30_000 }, 1_000, 99_999)).toBe(31_000);
    expect(nextDue({ kind: 'interval', ms: 30_000 }, 1_000, 99_999, 4)).toBe(121_000);
  });

  it('takes the first cron fire time strictly after the last refresh', () => {
    const now = at('2024-01-01T01:00:00Z');
    expect(nextDue(fiveMinutes, at('2024-01-01T00:02:00Z'), now)).toBe(at('2024-01-01T00:05:00Z'));
    expect(nextDue(fiveMinutes, at('2024-01-01T00:05:00Z'), now)).toBe(at('2024-01-01T00:10:00Z'));
    expect(nextDue(fiveMinutes, at('2024-01-01T00:04:59.999Z'), now)).toBe(at('2024-01-01T00:05:00Z'));
    expect(nextDue(fiveMinutes, at('2024-01-01T00:05:00.001Z'), now)).toBe(at('2024-01-01T00:10:00Z'));
  });

  it('returns a past fire time for a stream table that missed it, so it refreshes at once', () => {
    const due = nextDue(fiveMinutes, at('2024-01-01T00:02:00Z'), at('2024-01-02T00:00:00Z'));
    expect(due).toBe(at('2024-01-01T00:05:00Z'));
  });

  it('skips to the n-th fire time under a slowdown of n', () => {
    expect(nextDue(fiveMinutes, at('2024-01-01T00:02:00Z'), 0, 2)).toBe(at('2024-01-01T00:10:00Z'));
  });

  it('evaluates cron in UTC, with seconds first in six fields', () => {
    const daily = { kind: 'cron', expression: '0 9 * * *' } as const;
    expect(nextDue(daily, at('2024-03-10T00:00:00Z'), 0)).toBe(at('2024-03-10T09:00:00Z'));
    const seconds = { kind: 'cron', expression: '*/15 * * * * *' } as const;
    expect(nextDue(seconds, at('2024-01-01T00:00:01Z'), 0)).toBe(at('2024-01-01T00:00:15Z'));
  });
});

describe('periodMs', () => {
  it('is the interval itself for an interval', () => {
    expect(periodMs({ kind: 'interval', ms: 1_234 }, 0)).toBe(1_234);
  });

  it('is the gap between fire times for a regular cron expression', () => {
    expect(periodMs({ kind: 'cron', expression: '*/5 * * * *' }, 0)).toBe(300_000);
    expect(periodMs({ kind: 'cron', expression: '@hourly' }, 0)).toBe(3_600_000);
  });

  it('finds the smallest gap even when the next one is the longest', () => {
    const weekdays = { kind: 'cron', expression: '0 9 * * 1-5' } as const;
    const fridayNoon = at('2024-01-05T12:00:00Z');
    expect(periodMs(weekdays, fridayNoon)).toBe(86_400_000);
  });
});
