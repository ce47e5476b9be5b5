// One stream table's actor: the machine, its pure scheduling decisions, and the shapes around it.
export { StaleFencingEpoch, WorkNotProvided } from './errors.js';
export { type RunWork, streamTableMachine, type WorkRunners, withWork } from './machine.js';
export type { NextStep, Outcome } from './scheduling.js';
export { afterFailure, afterSuccess, dueAt, isPaused, nextStep, wasLate, withFacts } from './scheduling.js';
export type {
  CatalogFacts,
  RefreshInput,
  RefreshResult,
  StreamTableContext,
  StreamTableEmitted,
  StreamTableEvent,
  StreamTableInput,
  StreamTableStatus,
  Work,
} from './types.js';
