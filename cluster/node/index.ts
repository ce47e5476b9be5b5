// The refresh node: the process `pgtrickle node` runs.
export type { StreamTableRow } from './catalog.js';
export { pendingChanges, readStreamTables, readStreamTablesById } from './catalog.js';
export { Coordinator, type CoordinatorOptions, type CoordinatorView } from './coordinator.js';
export { DueQueue } from './due-queue.js';
export { type NodeOptions, RefreshNode } from './node.js';
export { type Grant, type PlacementInput, place } from './placement.js';
export { refreshOnce, refreshRunners, reinitOnce } from './refresh.js';
