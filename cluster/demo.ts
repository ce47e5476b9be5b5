// `npm run demo`: creates a stream table over an orders table, changes the orders, refreshes,
// and shows that the stream table equals its query again. Uses $PGTRICKLE_DATABASE_URL, else
// the PostgreSQL on 127.0.0.1:5432, else a throwaway server from local or embedded binaries.
import pg from 'pg';
import { ident } from '../shared/pg/quote.js';
import { migrate } from '../sql/migrate.js';
import { startPostgres } from '../tests/harness/postgres.js';

const DEMO_DB = 'pgtrickle_demo';

async function reachable(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1500 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function server(): Promise<{ url: string; stop(): Promise<void> }> {
  const given = process.env.PGTRICKLE_DATABASE_URL;
  if (given) return { url: given, stop: async () => {} };
  const local = 'postgres://postgres@127.0.0.1:5432/postgres';
  if (await reachable(local)) {
    console.log('using the PostgreSQL server on 127.0.0.1:5432');
    return withDemoDatabase(local, async () => {});
  }
  console.log('no PostgreSQL on 127.0.0.1:5432: starting a throwaway server …');
  const throwaway = await startPostgres({ throwaway: true });
  console.log(`started PostgreSQL (${throwaway.kind} binaries) on port ${throwaway.port}`);
  return withDemoDatabase(throwaway.url, () => throwaway.stop());
}

async function withDemoDatabase(maintenanceUrl: string, stop: () => Promise<void>) {
  const admin = new pg.Client({ connectionString: maintenanceUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${ident(DEMO_DB)} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${ident(DEMO_DB)}`);
  await admin.end();
  const url = new URL(maintenanceUrl);
  url.pathname = `/${DEMO_DB}`;
  return { url: url.toString(), stop };
}

async function show(client: pg.Client, title: string, sql: string): Promise<void> {
  console.log(`\n${title}`);
  console.table((await client.query(sql)).rows);
}

async function main(): Promise<void> {
  const target = await server();
  const client = new pg.Client({ connectionString: target.url });
  await client.connect();
  try {
    const { version } = await migrate(client, {
      onApplied: (m) => console.log(`applied migration ${m.version}: ${m.description}`),
    });
    console.log(`pgtrickle catalog at version ${version} in database ${DEMO_DB}`);

    await client.query(`
      CREATE TABLE orders (id serial PRIMARY KEY, region text NOT NULL, amount numeric(10,2) NOT NULL);
      INSERT INTO orders (region, amount)
        SELECT (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4], (g * 37 % 500) / 10.0
          FROM generate_series(1, 10000) g;`);
    await client.query(`SELECT pgtrickle.create_stream_table('revenue_by_region',
      'SELECT region, count(*) AS orders, sum(amount) AS revenue FROM orders GROUP BY region',
      schedule => '5s')`);
    await show(
      client,
      'revenue_by_region after create_stream_table:',
      'SELECT * FROM revenue_by_region ORDER BY region',
    );

    await client.query(`
      INSERT INTO orders (region, amount) VALUES ('north', 1000), ('central', 250);
      UPDATE orders SET amount = amount * 2 WHERE id % 100 = 0;
      DELETE FROM orders WHERE region = 'west' AND id % 7 = 0;`);
    const { rows } = await client.query(
      `SELECT count(*)::int AS n FROM pgtrickle_changes.${ident(
        `changes_${(await client.query(`SELECT 'orders'::regclass::oid AS oid`)).rows[0].oid}`,
      )}`,
    );
    console.log(`\nchanged the orders: ${rows[0].n} rows of changes captured, not yet applied`);

    await client.query(`SELECT pgtrickle.refresh_stream_table('revenue_by_region')`);
    await show(client, 'after refresh_stream_table:', 'SELECT * FROM revenue_by_region ORDER BY region');

    const diff = await client.query(`SELECT count(*)::int AS n FROM (
      (SELECT * FROM revenue_by_region EXCEPT ALL
       SELECT region, count(*), sum(amount) FROM orders GROUP BY region)
      UNION ALL
      (SELECT region, count(*), sum(amount) FROM orders GROUP BY region EXCEPT ALL
       SELECT * FROM revenue_by_region)) d`);
    console.log(`\nrows differing from the query evaluated now: ${diff.rows[0].n}`);
    await show(
      client,
      'refresh history:',
      `SELECT refresh_id, action, initiated_by, rows_inserted, rows_deleted, changes_consumed,
              round(extract(epoch FROM end_time - start_time) * 1000, 1) AS ms
         FROM pgtrickle.pgt_refresh_history ORDER BY refresh_id`,
    );
    await show(
      client,
      'pgtrickle.pgt_status():',
      'SELECT name, status, refresh_mode, schedule, is_populated FROM pgtrickle.pgt_status()',
    );
  } finally {
    await client.end();
    await target.stop();
  }
}

await main();
