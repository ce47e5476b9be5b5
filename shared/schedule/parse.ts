// Parses a schedule string with the acceptance of pgtrickle._normalize_schedule (0003_sql_api.sql).
import { compileCron } from './cron.js';
import { ScheduleInvalid } from './errors.js';
import type { Schedule } from './schedule.js';

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

// The same patterns as the SQL function; `btrim` there trims spaces only, and durations are
// case-sensitive while macros are not.
const DURATION = /^(?:[0-9]+(?:ms|s|m|h|d))+$/;
const DURATION_PART = /([0-9]+)(ms|s|m|h|d)/g;
const MACRO = /^@(?:yearly|annually|monthly|weekly|daily|midnight|hourly)$/i;
const CRON = /^[0-9A-Za-z*/,?#LW-]+(?:\s+[0-9A-Za-z*/,?#LW-]+){4,5}$/;
// A 5- or 6-field expression repeats within 400 Gregorian years, so one with no fire time after
// the epoch never fires at all (e.g. 30 February).
const CRON_PROBE_FROM = 0;

/** `null` is CALCULATED, as in the SQL API. */
export function parseSchedule(text: string | null): Schedule {
  if (text === null) return { kind: 'calculated' };
  const value = text.replace(/^ +| +$/g, '');
  if (value.toLowerCase() === 'calculated') return { kind: 'calculated' };
  if (DURATION.test(value)) return { kind: 'interval', ms: durationMs(text, value) };
  if (MACRO.test(value)) return cronSchedule(text, value.toLowerCase());
  if (CRON.test(value)) return cronSchedule(text, value.replace(/\s+/g, ' '));
  throw new ScheduleInvalid(text);
}

function durationMs(text: string, value: string): number {
  let ms = 0;
  for (const [, amount, unit] of value.matchAll(DURATION_PART)) {
    ms += Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
  }
  if (ms === 0) throw new ScheduleInvalid(text, 'the interval must be greater than zero');
  // The SQL side takes any digit string; past 2^53 ms (285,000 years) the sum is no longer exact.
  if (!Number.isSafeInteger(ms)) throw new ScheduleInvalid(text, 'the interval is too long');
  return ms;
}

function cronSchedule(text: string, expression: string): Schedule {
  let fires: Date | null;
  try {
    fires = compileCron(expression).nextRun(new Date(CRON_PROBE_FROM));
  } catch (error) {
    throw new ScheduleInvalid(text, error instanceof Error ? error.message : String(error));
  }
  if (fires === null) throw new ScheduleInvalid(text, 'the cron expression never fires');
  return { kind: 'cron', expression };
}
