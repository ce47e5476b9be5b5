// Entry point for tests: the shared servers from global-setup.ts and helpers to start more.
import { inject } from 'vitest';
import { createDatabase, type TestDatabase } from './postgres.js';

export * from './nats.js';
export { freePort, freePorts } from './ports.js';
export * from './postgres.js';
export { type Resource, track } from './processes.js';

/** A new, empty database on the run's shared PostgreSQL server; drop() it when done. */
export function freshDatabase(): Promise<TestDatabase> {
  return createDatabase(inject('pgUrl'));
}
