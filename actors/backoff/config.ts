// Backoff settings with their defaults; one object per node, checked once at start.
import { PgTrickleError } from '../../shared/errors/index.js';

export type Jitter = 'full' | 'equal';

export interface FailureBackoffConfig {
  /** delay after the first failure */
  readonly baseMs: number;
  /** no delay grows past this */
  readonly capMs: number;
  readonly jitter: Jitter;
}

export interface AutoBackoffConfig {
  readonly enabled: boolean;
  /** consecutive late refreshes before the interval starts doubling */
  readonly lateCyclesBeforeSlowdown: number;
  /** the interval never stretches past this many times the configured one */
  readonly maxSlowdown: number;
}

export interface BackoffConfig {
  readonly failure: FailureBackoffConfig;
  readonly auto: AutoBackoffConfig;
}

export interface BackoffOverrides {
  readonly failure?: Partial<FailureBackoffConfig>;
  readonly auto?: Partial<AutoBackoffConfig>;
}

export const DEFAULT_BACKOFF_CONFIG: BackoffConfig = {
  // Equal jitter keeps half of each delay, so a failing refresh never retries at once.
  failure: { baseMs: 1_000, capMs: 60_000, jitter: 'equal' },
  // pg_trickle lowered its cap from 64x to 8x in 0.10.0: at 64x a '1s' table could wait over a
  // minute between refreshes.
  auto: { enabled: true, lateCyclesBeforeSlowdown: 3, maxSlowdown: 8 },
};

/** Defaults overlaid with `overrides`; throws CONFIG_INVALID for values no schedule can use. */
export function backoffConfig(overrides: BackoffOverrides = {}): BackoffConfig {
  const config: BackoffConfig = {
    failure: { ...DEFAULT_BACKOFF_CONFIG.failure, ...overrides.failure },
    auto: { ...DEFAULT_BACKOFF_CONFIG.auto, ...overrides.auto },
  };
  const { failure, auto } = config;
  if (!(failure.baseMs > 0 && failure.capMs >= failure.baseMs)) {
    throw invalid(`failure backoff needs 0 < baseMs <= capMs, got ${failure.baseMs} and ${failure.capMs}`);
  }
  if (!(Number.isInteger(auto.lateCyclesBeforeSlowdown) && auto.lateCyclesBeforeSlowdown >= 1)) {
    throw invalid(
      `lateCyclesBeforeSlowdown must be a positive integer, got ${auto.lateCyclesBeforeSlowdown}`,
    );
  }
  if (!(Number.isInteger(auto.maxSlowdown) && auto.maxSlowdown >= 1)) {
    throw invalid(`maxSlowdown must be a positive integer, got ${auto.maxSlowdown}`);
  }
  return config;
}

function invalid(message: string): PgTrickleError {
  return new PgTrickleError('CONFIG_INVALID', message, {
    hint: 'Omit a backoff setting to use its default.',
  });
}
