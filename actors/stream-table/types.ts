// The shapes around one stream table's actor: what it starts from, what it holds, what it hears,
// what its refresh and reinit runs take and give back, and what it announces.
import type { ConcreteSchedule } from '../../shared/schedule/index.js';
import type { BackoffConfig, Pace } from '../backoff/index.js';

/** pgt_stream_tables.status */
export type StreamTableStatus = 'INITIALIZING' | 'ACTIVE' | 'SUSPENDED' | 'ERROR';

/** The catalog facts that may change while the actor runs; CATALOG_CHANGED brings them fresh. */
export interface CatalogFacts {
  /** quoted and schema-qualified, as pgt_status() shows it */
  readonly name: string;
  /** resolved by the DAG: an actor never holds CALCULATED */
  readonly schedule: ConcreteSchedule;
  readonly status: StreamTableStatus;
  readonly needsReinit: boolean;
}

/**
 * Everything an actor starts from. It is rebuilt from the catalog on every start rather than
 * restored from a snapshot, since XState does not restore pending timers.
 */
export interface StreamTableInput extends CatalogFacts {
  /** pgt_id */
  readonly id: string;
  /** fencing epoch of the lease this node holds for the stream table (I3) */
  readonly epoch: number;
  readonly populated: boolean;
  /** when the last refresh started (its data timestamp), epoch ms */
  readonly lastRefreshAt: number | undefined;
  readonly consecutiveFailures: number;
  /** treat the sources as changed: refresh when due without waiting for news of changes */
  readonly workPending?: boolean;
  /** epoch ms; the same clock as the one given to createActor, so tests can drive both */
  readonly now: () => number;
  /** [0, 1) for backoff jitter; Math.random when absent */
  readonly random?: () => number;
  readonly backoff?: BackoffConfig;
}

export interface StreamTableContext extends CatalogFacts {
  readonly id: string;
  readonly epoch: number;
  readonly populated: boolean;
  readonly lastRefreshAt: number | undefined;
  readonly consecutiveFailures: number;
  readonly pace: Pace;
  /** changes or an upstream refresh were signalled and no refresh has consumed them yet */
  readonly workPending: boolean;
  /** when the refresh or reinit under way started */
  readonly startedAt: number | undefined;
  readonly now: () => number;
  readonly random: () => number;
  readonly backoff: BackoffConfig;
}

export type StreamTableEvent =
  /** the node's scheduler tick: this stream table's due time has passed */
  | { readonly type: 'DUE' }
  /** a source has changes past this stream table's frontier */
  | { readonly type: 'CHANGES_PENDING' }
  | { readonly type: 'UPSTREAM_REFRESHED' }
  | { readonly type: 'CATALOG_CHANGED'; readonly facts: CatalogFacts }
  | { readonly type: 'SUSPEND' }
  | { readonly type: 'RESUME' }
  /** the lease went to another node: give the stream table up at once (I3) */
  | { readonly type: 'LEASE_LOST' }
  /** this node is shutting down */
  | { readonly type: 'STOP' }
  /** the refresh or reinit the actor started committed (or was skipped for a held lock) */
  | { readonly type: 'WORK_DONE'; readonly result: RefreshResult }
  /** the refresh or reinit the actor started failed; StaleFencingEpoch means fenced out (I3) */
  | { readonly type: 'WORK_FAILED'; readonly error: unknown };

export interface RefreshInput {
  readonly id: string;
  readonly name: string;
  readonly epoch: number;
}

/**
 * pgt_refresh_history.action, or SKIPPED when nothing was committed: nothing was new, a diamond
 * join's group could not take its members' locks, or (busy) another session held the table's
 * refresh lock, that is, was refreshing it (I1).
 */
export type RefreshResult =
  | {
      readonly action: 'FULL' | 'DIFFERENTIAL' | 'REINITIALIZE' | 'NO_DATA';
      readonly rowsInserted: number;
      readonly rowsDeleted: number;
      readonly durationMs: number;
      /** pgt_refresh_history.refresh_id, for events that name the refresh */
      readonly refreshId?: string;
      /** the frontier the refresh committed, as pg_snapshot text */
      readonly frontier?: string;
      /** null when a full recompute did not count them */
      readonly changesConsumed?: number | null;
    }
  | { readonly action: 'SKIPPED'; readonly busy?: true };

/** Which work ran: a scheduled refresh, or a rebuild followed by a FULL refresh. */
export type Work = 'refresh' | 'reinit';

/** What the actor announces, for the node to publish and log; times by the actor's `now`. */
export type StreamTableEmitted =
  | {
      readonly type: 'refreshed';
      readonly id: string;
      readonly work: Work;
      readonly result: RefreshResult;
      readonly startedAt: number;
      readonly finishedAt: number;
      readonly late: boolean;
    }
  | {
      readonly type: 'failed';
      readonly id: string;
      readonly work: Work;
      readonly error: unknown;
      readonly consecutiveFailures: number;
    };
