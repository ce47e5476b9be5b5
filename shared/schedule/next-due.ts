// When a concrete schedule next wants a refresh, and how far apart its refreshes are.
import { fireTimesAfter } from './cron.js';
import type { ConcreteSchedule } from './schedule.js';

// Gaps between cron fire times vary ('0 9 * * 1-5' has 24h and 72h); sampling a few consecutive
// gaps finds the smallest without enumerating a whole year.
const CRON_GAP_SAMPLES = 4;

/**
 * The instant (epoch ms) the next refresh is due. A stream table never refreshed is due `now`.
 * `slowdown` is auto_backoff's factor: an interval is multiplied by it, a cron schedule skips to
 * its `slowdown`-th fire time after the last refresh.
 */
export function nextDue(
  schedule: ConcreteSchedule,
  lastRefreshAt: number | undefined,
  now: number,
  slowdown = 1,
): number {
  if (lastRefreshAt === undefined) return now;
  switch (schedule.kind) {
    case 'interval':
      return lastRefreshAt + schedule.ms * slowdown;
    case 'cron':
      return fireTimesAfter(schedule.expression, lastRefreshAt, slowdown).at(-1) ?? Number.POSITIVE_INFINITY;
    default: {
      const exhaustive: never = schedule;
      return exhaustive;
    }
  }
}

/**
 * The shortest time between two refreshes: the interval itself, or for cron the smallest gap
 * between consecutive fire times after `at`.
 */
export function periodMs(schedule: ConcreteSchedule, at: number): number {
  switch (schedule.kind) {
    case 'interval':
      return schedule.ms;
    case 'cron': {
      const fires = fireTimesAfter(schedule.expression, at, CRON_GAP_SAMPLES + 1);
      let smallest = Number.POSITIVE_INFINITY;
      for (let i = 1; i < fires.length; i++) {
        smallest = Math.min(smallest, (fires[i] as number) - (fires[i - 1] as number));
      }
      return smallest;
    }
    default: {
      const exhaustive: never = schedule;
      return exhaustive;
    }
  }
}
