// Scheduling decisions for one stream table as pure functions of its facts and the time; the
// machine's named guards and actions call them.
import { type ConcreteSchedule, nextDue } from '../../shared/schedule/index.js';
import { type AutoBackoffConfig, nextPace, ON_SCHEDULE } from '../backoff/index.js';
import type { CatalogFacts, RefreshResult, StreamTableContext, StreamTableStatus, Work } from './types.js';

/** SUSPENDED by a user, or ERROR after too many failures: either way no refresh until resumed. */
export function isPaused(status: StreamTableStatus): boolean {
  switch (status) {
    case 'SUSPENDED':
    case 'ERROR':
      return true;
    case 'ACTIVE':
    case 'INITIALIZING':
      return false;
    default: {
      const exhaustive: never = status;
      return exhaustive;
    }
  }
}

type DueFacts = Pick<StreamTableContext, 'schedule' | 'lastRefreshAt' | 'pace'>;

/** When the next refresh is due, auto_backoff's slowdown included: the key of the node's queue. */
export function dueAt(st: DueFacts, now: number): number {
  return nextDue(st.schedule, st.lastRefreshAt, now, st.pace.slowdown);
}

export type NextStep = 'suspend' | 'reinit' | 'refresh' | 'wait';

type StepFacts = DueFacts & Pick<StreamTableContext, 'status' | 'needsReinit' | 'populated' | 'workPending'>;

/**
 * What an idle stream table does now. A pause wins over everything; a reinit does not wait for
 * the schedule, since the table no longer matches its definition; a refresh waits until it is
 * due and has something to read (or was never filled).
 */
export function nextStep(st: StepFacts, now: number): NextStep {
  if (isPaused(st.status)) return 'suspend';
  if (st.needsReinit) return 'reinit';
  if ((st.workPending || !st.populated) && dueAt(st, now) <= now) return 'refresh';
  return 'wait';
}

/** A refresh is late when it finished after the configured schedule wanted the next one. */
export function wasLate(schedule: ConcreteSchedule, startedAt: number, finishedAt: number): boolean {
  return finishedAt > nextDue(schedule, startedAt, startedAt);
}

export interface Outcome {
  readonly update: Partial<StreamTableContext>;
  readonly late: boolean;
}

/**
 * Bookkeeping after a refresh or reinit returned. The last refresh counts from its start, the
 * instant its snapshot stands for. A reinit's full rebuild says nothing about how long refreshes
 * take, so it leaves auto_backoff's pace alone.
 */
export function afterSuccess(
  st: Pick<StreamTableContext, 'schedule' | 'pace' | 'populated'>,
  work: Work,
  result: RefreshResult,
  startedAt: number,
  finishedAt: number,
  config: AutoBackoffConfig,
): Outcome {
  switch (result.action) {
    // Another session held the lock (busy): it is refreshing the table (I1), so the slot is
    // served. Otherwise nothing was committed (nothing new, or a diamond's group could not lock
    // its members): like the catalog's data timestamp, the last refresh stays where it was, so
    // the table stays due and the next news of changes (a tick's source check, an upstream
    // refresh) starts it at once rather than a whole interval later. A table never filled has no
    // such news to wait for: its slot counts as served, or it would retry at once.
    case 'SKIPPED':
      return { update: result.busy || !st.populated ? { lastRefreshAt: startedAt } : {}, late: false };
    case 'FULL':
    case 'DIFFERENTIAL':
    case 'REINITIALIZE':
    case 'NO_DATA': {
      const late = wasLate(st.schedule, startedAt, finishedAt);
      const pace = work === 'refresh' ? nextPace(st.pace, late, config) : st.pace;
      return { update: { lastRefreshAt: startedAt, populated: true, consecutiveFailures: 0, pace }, late };
    }
    default: {
      const exhaustive: never = result;
      return exhaustive;
    }
  }
}

/** Bookkeeping after a failure: the work the attempt claimed is still there to do. */
export function afterFailure(
  st: Pick<StreamTableContext, 'consecutiveFailures'>,
  work: Work,
): Partial<StreamTableContext> {
  const consecutiveFailures = st.consecutiveFailures + 1;
  switch (work) {
    case 'refresh':
      return { consecutiveFailures, workPending: true };
    case 'reinit':
      return { consecutiveFailures, needsReinit: true };
    default: {
      const exhaustive: never = work;
      return exhaustive;
    }
  }
}

/** Fresh catalog facts; a new schedule starts on pace, its lateness not yet known. */
export function withFacts(
  st: Pick<StreamTableContext, 'schedule' | 'pace'>,
  facts: CatalogFacts,
): Partial<StreamTableContext> {
  return { ...facts, pace: sameSchedule(st.schedule, facts.schedule) ? st.pace : ON_SCHEDULE };
}

function sameSchedule(a: ConcreteSchedule, b: ConcreteSchedule): boolean {
  switch (a.kind) {
    case 'interval':
      return b.kind === 'interval' && b.ms === a.ms;
    case 'cron':
      return b.kind === 'cron' && b.expression === a.expression;
    default: {
      const exhaustive: never = a;
      return exhaustive;
    }
  }
}
