// auto_backoff: a stream table whose refreshes keep finishing after its next due time is
// refreshed less often, so that it stops holding a connection back to back.
import type { AutoBackoffConfig } from './config.js';

export interface Pace {
  /** consecutive refreshes that finished after the next due time of the configured schedule */
  readonly lateCycles: number;
  /** factor on the configured schedule; 1 is on schedule */
  readonly slowdown: number;
}

export const ON_SCHEDULE: Pace = { lateCycles: 0, slowdown: 1 };

/**
 * The pace after one more refresh. Lateness is judged against the configured schedule, not the
 * slowed one: judged against the slowed one, the first on-time refresh would reset the pace and
 * the table would oscillate between late and slowed.
 */
export function nextPace(pace: Pace, late: boolean, config: AutoBackoffConfig): Pace {
  if (!late) return ON_SCHEDULE;
  const lateCycles = pace.lateCycles + 1;
  if (!config.enabled || lateCycles < config.lateCyclesBeforeSlowdown) return { lateCycles, slowdown: 1 };
  return { lateCycles, slowdown: Math.min(config.maxSlowdown, pace.slowdown * 2) };
}
