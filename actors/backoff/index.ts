// Backoff policies as pure functions: delays after failures, and auto_backoff for late refreshes.

export type { Pace } from './auto-backoff.js';
export { nextPace, ON_SCHEDULE } from './auto-backoff.js';
export type {
  AutoBackoffConfig,
  BackoffConfig,
  BackoffOverrides,
  FailureBackoffConfig,
  Jitter,
} from './config.js';
export { backoffConfig, DEFAULT_BACKOFF_CONFIG } from './config.js';
export { failureDelayMs } from './failure-delay.js';
