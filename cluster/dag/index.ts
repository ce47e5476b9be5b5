// The DAG of stream tables: build it from catalog facts, then look things up by id.

export type { Dag, DagNode, DagOptions } from './dag.js';
export { buildDag, DEFAULT_CALCULATED_FALLBACK_MS } from './dag.js';
export { diamondGroup } from './diamond.js';
export { DagCycle, DuplicateStreamTable, StreamTableNotInDag, UnknownSource } from './errors.js';
export { downstreamOf, nodeOf, readersOf, scheduleOf, sourcesOf, waveOf } from './lookup.js';
