// vitest globalSetup: one PostgreSQL and one NATS server shared by the whole run, handed to test
// files through inject('pgUrl') and inject('natsUrl').
import type { TestProject } from 'vitest/node';
import { NatsServerNotFound, startNats } from './nats.js';
import { startPostgres } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the shared server's `postgres` maintenance database */
    pgUrl: string;
    /** client URL of the shared NATS server; empty when nats-server is not installed */
    natsUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [pg, nats] = await Promise.allSettled([startPostgres(), startNats()]);
  if (pg.status === 'rejected') {
    if (nats.status === 'fulfilled') await nats.value.stop();
    throw pg.reason;
  }
  if (nats.status === 'rejected') {
    // Only a missing binary is forgiven: PostgreSQL-only tests can still run without NATS.
    if (!(nats.reason instanceof NatsServerNotFound)) {
      await pg.value.stop();
      throw nats.reason;
    }
    console.warn(`[harness] ${nats.reason.message}; tests that need NATS will be skipped`);
  }
  project.provide('pgUrl', pg.value.url);
  project.provide('natsUrl', nats.status === 'fulfilled' ? nats.value.url : '');
  return async () => {
    await Promise.all([pg.value.stop(), nats.status === 'fulfilled' ? nats.value.stop() : undefined]);
  };
}
