// Scheduler costs of a refresh node, measured side by side in one run:
//  1. dispatch per tick with 500 and 5,000 stream-table actors (real XState actors, a virtual
//     clock, refreshes that finish at once): the node's due-time heap against a scan of every
//     actor per tick, p50/p99 of the synchronous part of each tick, and beside it the time the
//     refreshes it started take to report back (their actors' return to idle), which blocks the
//     event loop just the same;
//  2. the source watchers' check for 1,000 sources: one pgtrickle._pending() call for all of
//     them against one call per stream table, on a throwaway PostgreSQL.
//   npm run bench:dispatch -- --sizes 500,5000 --ticks 2000 --change-every 10000 --sources 1000
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createActor } from 'xstate';
import { dueAt, type RefreshResult, type StreamTableInput, withWork } from '../actors/stream-table/index.js';
import { pendingChanges } from '../cluster/node/catalog.js';
import { candidates, dispatch, type StreamTableActor } from '../cluster/node/dispatch.js';
import { DueQueue } from '../cluster/node/due-queue.js';
import { ident } from '../shared/pg/quote.js';
import { migrate } from '../sql/migrate.js';
import { createDatabase, startPostgres } from '../tests/harness/postgres.js';

const TICK_MS = 50;
// Intervals from 500 ms to 1 min, spread evenly over the tables.
const INTERVALS_MS = [500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000];

interface Percentiles {
  p50: number;
  p99: number;
  max: number;
  meanStarted: number;
  /** the reports of the refreshes each tick started, handled before the next tick */
  reportsP50: number;
  reportsP99: number;
}

/** A deterministic [0, 1) stream, so both schedulers see the same changes. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function quantiles(samples: number[]): (q: number) => number {
  const sorted = [...samples].sort((a, b) => a - b);
  return (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

function percentiles(samples: number[], reports: number[], dueCounts: number[]): Percentiles {
  const tick = quantiles(samples);
  const report = quantiles(reports);
  return {
    p50: tick(0.5),
    p99: tick(0.99),
    max: tick(1),
    meanStarted: dueCounts.reduce((a, b) => a + b, 0) / Math.max(1, dueCounts.length),
    reportsP50: report(0.5),
    reportsP99: report(0.99),
  };
}

const done: RefreshResult = {
  action: 'DIFFERENTIAL',
  rowsInserted: 1,
  rowsDeleted: 0,
  durationMs: 1,
  refreshId: '1',
  frontier: '1:1:',
  changesConsumed: 1,
};

// Refreshes resolve on the next microtask, so the tick measures the scheduler, not PostgreSQL.
const machine = withWork({ refresh: async () => done, reinit: async () => done });

function spawnActors(count: number, now: () => number): Map<string, { actor: StreamTableActor }> {
  const actors = new Map<string, { actor: StreamTableActor }>();
  for (let i = 0; i < count; i++) {
    const input: StreamTableInput = {
      id: String(i + 1),
      name: `public.st_${i + 1}`,
      schedule: { kind: 'interval', ms: INTERVALS_MS[i % INTERVALS_MS.length] as number },
      status: 'ACTIVE',
      needsReinit: false,
      epoch: 1,
      populated: true,
      lastRefreshAt: now() - ((i * 7919) % 60_000),
      consecutiveFailures: 0,
      now,
      random: () => 0.5,
    };
    actors.set(input.id, { actor: createActor(machine, { input }) });
  }
  return actors;
}

type Scheduler = 'heap' | 'scan';

// One simulated node: the same actors, the same virtual clock and the same changes for both
// schedulers; only the way the tick finds its candidates differs. The source check's answer
// (which candidates have changes) comes from a seeded stream and is not timed: it is the
// database's half of the tick, measured in part 2.
async function runScheduler(
  kind: Scheduler,
  count: number,
  ticks: number,
  changeEveryMs: number,
): Promise<Percentiles> {
  let clock = Date.UTC(2026, 0, 1);
  const now = () => clock;
  const random = lcg(count);
  const actors = spawnActors(count, now);
  const queue = new DueQueue();
  for (const [id, { actor }] of actors) {
    actor.subscribe((snapshot) => {
      if (snapshot.value === 'idle') queue.schedule(id, dueAt(snapshot.context, now()));
    });
    actor.start();
  }
  const changeChance = TICK_MS / changeEveryMs;
  const samples: number[] = [];
  const reports: number[] = [];
  const dueCounts: number[] = [];
  for (let tick = 0; tick < ticks; tick++) {
    clock += TICK_MS;
    let start = process.hrtime.bigint();
    let due: string[];
    let ids: string[];
    if (kind === 'heap') {
      due = queue.popDue(clock);
      ids = candidates(queue, due);
    } else {
      due = [];
      for (const [id, { actor }] of actors) {
        const snapshot = actor.getSnapshot();
        if (snapshot.value === 'idle' && dueAt(snapshot.context, clock) <= clock) due.push(id);
      }
      ids = due;
    }
    let elapsed = process.hrtime.bigint() - start;
    const pending = new Set(ids.filter(() => random() < changeChance));
    start = process.hrtime.bigint();
    dispatch(queue, actors, kind === 'heap' ? due : due.filter((id) => !pending.has(id)), pending, now);
    elapsed += process.hrtime.bigint() - start;
    samples.push(Number(elapsed) / 1e6);
    dueCounts.push(pending.size);
    // Lets the refreshes started by this tick finish before the next one, as they would in 50 ms.
    start = process.hrtime.bigint();
    await new Promise((resolve) => setImmediate(resolve));
    reports.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  for (const { actor } of actors.values()) actor.stop();
  const warm = Math.floor(ticks / 10);
  return percentiles(samples.slice(warm), reports.slice(warm), dueCounts);
}

async function sourceCheck(sources: number, repeats: number): Promise<{ one: number[]; each: number[] }> {
  const server = await startPostgres({ throwaway: true, settings: { autovacuum: 'off' } });
  const client = new pg.Client({ connectionString: (await createDatabase(server)).url });
  await client.connect();
  try {
    await migrate(client);
    // A hundred sources per transaction: one round trip each, within the lock table's room.
    for (let from = 1; from <= sources; from += 100) {
      await client.query(`DO $$ BEGIN FOR i IN ${from}..${Math.min(sources, from + 99)} LOOP
        EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, v int)', 'src_' || i);
        EXECUTE format('INSERT INTO %I SELECT g, g FROM generate_series(1, 10) g', 'src_' || i);
        PERFORM pgtrickle.create_stream_table('st_' || i, format('SELECT id, v FROM %I', 'src_' || i), '1m', 'FULL');
      END LOOP; END $$`);
    }
    const { rows: created } = await client.query<{ id: string }>(
      'SELECT pgt_id::text AS id FROM pgtrickle.pgt_stream_tables ORDER BY pgt_id',
    );
    const ids = created.map((r) => r.id);
    // One source in ten has changes past its stream table's frontier.
    for (let i = 1; i <= sources; i += 10) await client.query(`UPDATE ${ident(`src_${i}`)} SET v = v + 1`);
    const expected = Math.ceil(sources / 10);
    const one: number[] = [];
    const each: number[] = [];
    for (let r = 0; r < repeats; r++) {
      let start = process.hrtime.bigint();
      const all = await pendingChanges(client, ids);
      one.push(Number(process.hrtime.bigint() - start) / 1e6);
      start = process.hrtime.bigint();
      let found = 0;
      for (const id of ids) found += (await pendingChanges(client, [id])).size;
      each.push(Number(process.hrtime.bigint() - start) / 1e6);
      if (all.size !== expected || found !== expected)
        throw new Error(`expected ${expected} pending, got ${all.size} in one query and ${found} one by one`);
    }
    return { one, each };
  } finally {
    await client.end();
    await server.stop();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const ms = (x: number) => (x < 1 ? x.toFixed(3) : x.toFixed(1));

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '500,5000' },
      ticks: { type: 'string', default: '2000' },
      sources: { type: 'string', default: '1000' },
      'change-every': { type: 'string', default: '10000' },
      repeats: { type: 'string', default: '5' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run bench:dispatch -- [--sizes 500,5000] [--ticks 2000] [--change-every 10000] [--sources 1000] [--repeats 5]\n',
    );
    return;
  }
  const ticks = Number(values.ticks);
  const changeEvery = Number(values['change-every']);
  process.stdout.write(
    `scheduler tick (synchronous part), ${TICK_MS} ms virtual ticks, ${ticks} ticks, schedules 500 ms to 1 min, each source changed every ${changeEvery} ms on average\n`,
  );
  process.stdout.write(
    '| stream tables | refreshes per tick | heap p50 ms | heap p99 ms | reports p50 ms | reports p99 ms | scan p50 ms | scan p99 ms | p99 scan/heap |\n',
  );
  process.stdout.write('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n');
  const sizes = values.sizes.split(',').filter(Boolean).map(Number);
  // One discarded pass, so that the first size measured does not pay for the JIT's warm-up.
  if (sizes.length > 0) await runScheduler('heap', 500, 500, changeEvery);
  for (const size of sizes) {
    const heap = await runScheduler('heap', size, ticks, changeEvery);
    const scan = await runScheduler('scan', size, ticks, changeEvery);
    process.stdout.write(
      `| ${size} | ${heap.meanStarted.toFixed(1)} | ${ms(heap.p50)} | ${ms(heap.p99)} | ${ms(heap.reportsP50)} | ${ms(heap.reportsP99)} | ${ms(scan.p50)} | ${ms(scan.p99)} | ${(scan.p99 / heap.p99).toFixed(1)}× |\n`,
    );
  }
  const sources = Number(values.sources);
  const { one, each } = await sourceCheck(sources, Number(values.repeats));
  process.stdout.write(`\nsource check, ${sources} sources, 1 in 10 changed (median of ${one.length})\n`);
  process.stdout.write('| one query ms | one query per source ms | ratio |\n| ---: | ---: | ---: |\n');
  process.stdout.write(
    `| ${ms(median(one))} | ${ms(median(each))} | ${(median(each) / median(one)).toFixed(1)}× |\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
