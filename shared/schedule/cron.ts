// Cron evaluation through croner, fixed to UTC and to the 5- or 6-field forms the SQL API accepts.
import { Cron } from 'croner';

// Every node must compute the same fire times whatever its host's TZ, so cron runs in UTC (as
// pg_cron does by default).
const OPTIONS = { timezone: 'UTC', mode: '5-or-6-parts' } as const;

/** Throws croner's own error when the expression cannot be evaluated. */
export function compileCron(expression: string): Cron {
  return new Cron(expression, OPTIONS);
}

/**
 * The first `count` fire times strictly after `after` (epoch ms). Fewer come back only for an
 * expression that never fires, which `parseSchedule` refuses.
 */
export function fireTimesAfter(expression: string, after: number, count: number): number[] {
  return compileCron(expression)
    .nextRuns(count, new Date(after))
    .map((date) => date.getTime());
}
