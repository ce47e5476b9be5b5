// How long a stream table waits after a failed refresh: capped exponential backoff with jitter,
// so that stream tables failing together (a database restart) do not retry together.
import type { FailureBackoffConfig, Jitter } from './config.js';

/**
 * d = min(cap, base * 2^(failures-1)) in whole ms, then jittered: `full` draws from [0, d),
 * `equal` from [floor(d/2), d). `random` returns [0, 1) like Math.random. No failures, no delay.
 */
export function failureDelayMs(failures: number, config: FailureBackoffConfig, random: () => number): number {
  if (failures < 1) return 0;
  // Integer bounds keep the draw below the ceiling: a float sum such as d/2 + r*d/2 rounds up to
  // d when r is just below 1 (fast-check seed 47485040).
  const ceiling = Math.floor(Math.min(config.capMs, config.baseMs * 2 ** (failures - 1)));
  const floor = jitterFloor(ceiling, config.jitter);
  return floor + Math.floor(random() * (ceiling - floor));
}

function jitterFloor(ceiling: number, jitter: Jitter): number {
  switch (jitter) {
    case 'full':
      return 0;
    case 'equal':
      return Math.floor(ceiling / 2);
    default: {
      const exhaustive: never = jitter;
      return exhaustive;
    }
  }
}
