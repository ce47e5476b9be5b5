// The throwaway server the benchmarks run on: buffers that hold TPC-H SF 0.1, and no autovacuum,
// so that timings do not depend on when it wakes.
import pg from 'pg';
import { createDatabase, startPostgres } from '../tests/harness/postgres.js';

export const LAB_SETTINGS: Record<string, string> = {
  shared_buffers: '512MB',
  work_mem: '64MB',
  maintenance_work_mem: '256MB',
  autovacuum: 'off',
};

/** Runs `fn` on a new database of a new throwaway server, both removed afterwards. */
export async function withLabDatabase<T>(
  fn: (client: pg.Client) => Promise<T>,
  settings: Record<string, string> = LAB_SETTINGS,
): Promise<T> {
  const server = await startPostgres({ throwaway: true, settings });
  try {
    const db = await createDatabase(server);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
      await db.drop();
    }
  } finally {
    await server.stop();
  }
}
