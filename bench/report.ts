// One command for the refresh benchmark report: the refresh matrix, TPC-H and Nexmark, each
// query refreshed FULL and DIFFERENTIAL side by side on identical data, written as markdown.
//   npm run bench:report -- --help
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrate } from '../sql/migrate.js';
import { createDatabase, type PgServer, startPostgres } from '../tests/harness/postgres.js';
import { LAB_SETTINGS } from './lab.js';
import { changeBatch, loadNexmark } from './nexmark/generate.js';
import { nexmarkQueries } from './nexmark/queries.js';
import { type Cell, refreshMatrix } from './refresh-matrix.js';
import {
  fallbackList,
  formatRatio,
  matrixMedian,
  matrixTable,
  pairMedians,
  pairTable,
} from './report/markdown.js';
import { type PairResult, type Sample, sideBySide } from './report/pairs.js';
import { changeCycle, loadTpch } from './tpch/generate.js';
import { tpchQueries } from './tpch/queries.js';

const HELP = `npm run bench:report -- [options]

Runs the refresh matrix, TPC-H and Nexmark with every query as two stream tables (FULL and
AUTO) refreshed side by side after the same changes, and writes a markdown report.

  --out FILE             report path (default bench/REPORT.md)
  --sections LIST        any of matrix,tpch,nexmark (default all three)
  --matrix-sizes LIST    refresh-matrix table sizes (default 10000,100000)
  --matrix-rates LIST    refresh-matrix change rates in % (default 1,10)
  --tpch LIST            TPC-H scale factors (default 0.01,0.1; 1 is available, ~10x SF 0.1)
  --tpch-cycles N        change cycles per scale factor (default 3)
  --change FRACTION      share of each TPC-H table changed per cycle (default 0.01)
  --nexmark-events N     Nexmark events loaded (default 200000)
  --nexmark-batch N      new Nexmark events per batch, plus a tenth updated and deleted (default 2000)
  --nexmark-cycles N     Nexmark batches (default 3)
  --queries LIST         only these TPC-H and Nexmark query ids (default all), e.g. q05,q09
  --timeout SECONDS      limit per refresh; a query over it is reported and dropped (default 60)
  --no-check             skip the oracle (I5) on every DIFFERENTIAL stream table after the last cycle
  --vacuum-buffers       before each TPC-H cycle and Nexmark batch, VACUUM (TRUNCATE false, ANALYZE)
                         every change buffer, as autovacuum may just after refreshes emptied them
  --large-delta-rows N   pgtrickle.large_delta_rows for the TPC-H and Nexmark refreshes
  --help                 this text
`;

// A seed under which every TPC-H query returns rows at SF 0.01 (as in tests/integration/tpch.test.ts).
const TPCH_SEED = 12;
const NEXMARK_SEED = 7;

interface Options {
  out: string;
  sections: Set<string>;
  matrixSizes: number[];
  matrixRates: number[];
  tpch: number[];
  tpchCycles: number;
  change: number;
  nexmarkEvents: number;
  nexmarkBatch: number;
  nexmarkCycles: number;
  timeoutMs: number;
  /** Query ids to run; undefined for all. */
  queries: Set<string> | undefined;
  check: boolean;
  vacuumBuffers: boolean;
  largeDeltaRows: number | undefined;
}

function options(): Options | undefined {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: 'bench/REPORT.md' },
      sections: { type: 'string', default: 'matrix,tpch,nexmark' },
      'matrix-sizes': { type: 'string', default: '10000,100000' },
      'matrix-rates': { type: 'string', default: '1,10' },
      tpch: { type: 'string', default: '0.01,0.1' },
      'tpch-cycles': { type: 'string', default: '3' },
      change: { type: 'string', default: '0.01' },
      'nexmark-events': { type: 'string', default: '200000' },
      'nexmark-batch': { type: 'string', default: '2000' },
      'nexmark-cycles': { type: 'string', default: '3' },
      timeout: { type: 'string', default: '60' },
      queries: { type: 'string' },
      'no-check': { type: 'boolean', default: false },
      'vacuum-buffers': { type: 'boolean', default: false },
      'large-delta-rows': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return undefined;
  const numbers = (s: string) =>
    s.split(',').map((x) => {
      const n = Number(x);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`not a positive number: ${x}`);
      return n;
    });
  const one = (s: string) => numbers(s)[0] as number;
  return {
    out: values.out,
    sections: new Set(values.sections.split(',')),
    matrixSizes: numbers(values['matrix-sizes']),
    matrixRates: numbers(values['matrix-rates']),
    tpch: numbers(values.tpch),
    tpchCycles: one(values['tpch-cycles']),
    change: one(values.change),
    nexmarkEvents: one(values['nexmark-events']),
    nexmarkBatch: one(values['nexmark-batch']),
    nexmarkCycles: one(values['nexmark-cycles']),
    timeoutMs: one(values.timeout) * 1000,
    queries: values.queries ? new Set(values.queries.split(',')) : undefined,
    check: !values['no-check'],
    vacuumBuffers: values['vacuum-buffers'],
    largeDeltaRows: values['large-delta-rows'] === undefined ? undefined : Number(values['large-delta-rows']),
  };
}

function progress(section: string): (id: string, s: Sample) => void {
  return (id, s) =>
    console.log(
      `${section} ${id.padEnd(7)} FULL ${s.fullMs.toFixed(1).padStart(9)} ms  DIFF ${s.diffMs.toFixed(1).padStart(9)} ms  ${formatRatio(s.fullMs / s.diffMs).padStart(7)}  ${s.diffAction}`,
    );
}

function chosen<Q extends { id: string }>(queries: readonly Q[], o: Options): readonly Q[] {
  const wanted = o.queries;
  return wanted ? queries.filter((q) => wanted.has(q.id)) : queries;
}

/** A fresh migrated database on `server` for one workload, dropped afterwards. */
async function withDatabase<T>(
  server: PgServer,
  o: Options,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const db = await createDatabase(server);
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await migrate(client);
    // The DIFFERENTIAL column measures the delta: AUTO may not swap it for FULL when it is slow.
    await client.query('SET pgtrickle.auto_cost_fallback = off');
    if (o.largeDeltaRows !== undefined) {
      await client.query("SELECT set_config('pgtrickle.large_delta_rows', $1, false)", [
        String(o.largeDeltaRows),
      ]);
    }
    return await fn(client);
  } finally {
    await client.end();
    await db.drop();
  }
}

/** What autovacuum may do to the change buffers once refreshes have emptied them. */
async function vacuumBuffers(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'pgtrickle_changes' AND c.relkind = 'r' ORDER BY c.relname`,
  );
  for (const { name } of rows) await client.query(`VACUUM (TRUNCATE false, ANALYZE) ${name}`);
}

function runTpch(server: PgServer, sf: number, o: Options): Promise<PairResult[]> {
  return withDatabase(server, o, async (client) => {
    const state = await loadTpch(client, { sf, seed: TPCH_SEED });
    const change = async () => {
      if (o.vacuumBuffers) await vacuumBuffers(client);
      await changeCycle(client, state, o.change);
    };
    return sideBySide(client, chosen(tpchQueries(sf), o), change, {
      cycles: o.tpchCycles,
      timeoutMs: o.timeoutMs,
      check: o.check,
      onSample: progress(`tpch sf ${sf}`),
    });
  });
}

function runNexmark(server: PgServer, o: Options): Promise<PairResult[]> {
  return withDatabase(server, o, async (client) => {
    const state = await loadNexmark(client, { events: o.nexmarkEvents, seed: NEXMARK_SEED });
    const change = async () => {
      if (o.vacuumBuffers) await vacuumBuffers(client);
      await changeBatch(client, state, o.nexmarkBatch);
    };
    return sideBySide(client, chosen(nexmarkQueries, o), change, {
      cycles: o.nexmarkCycles,
      timeoutMs: o.timeoutMs,
      check: o.check,
      onSample: progress('nexmark'),
    });
  });
}

interface Machine {
  cores: number;
  cpu: string;
  memoryGb: number;
  postgres: string;
  commit: string;
}

async function machine(server: PgServer): Promise<Machine> {
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  const { rows } = await client.query<{ v: string }>('SELECT version() AS v');
  await client.end();
  let commit = 'unknown';
  try {
    // Only trailing space is trimmed: a porcelain status line starts with a space of its own.
    const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8' }).trimEnd();
    commit = `\`${git('rev-parse', '--short', 'HEAD')}\``;
    // Uncommitted changes to the compiler or the SQL change what the figures mean.
    const dirty = git('status', '--porcelain', '--', 'sql', 'cluster/planner', 'bench');
    if (dirty)
      commit += ` plus uncommitted changes to ${dirty
        .split('\n')
        .map((l) => l.slice(3))
        .join(', ')}`;
  } catch {
    // Not a git checkout: the report simply says so.
  }
  return {
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    postgres: rows[0]?.v ?? 'unknown',
    commit,
  };
}

interface Report {
  o: Options;
  machine: Machine;
  matrix?: Cell[];
  tpch: [number, PairResult[]][];
  nexmark?: PairResult[];
  seconds: number;
}

const fairness = (
  o: Options,
) => `Every figure is a ratio measured in one run on one server. Each query exists twice on the
same database: one stream table in FULL mode, one in AUTO mode (DIFFERENTIAL when the compiler
supports the query, else FULL with a recorded reason; \`pgtrickle.auto_cost_fallback\` is off, so a
slow delta is measured rather than replaced by a recompute). Both read the same sources, so after each
change cycle both consume exactly the same changes from identical data. They are refreshed back to
back, AUTO first on even cycles and FULL first on odd ones, so neither always finds the other's
pages in cache. A time is the wall-clock of \`SELECT pgtrickle.refresh_stream_table(…)\` from the
client: the whole refresh transaction (lock, recompute or delta, history, frontier). Capture
costs at write time are paid once per source for both and are not in either figure. Per query,
FULL ms and DIFF ms are medians over the cycles and the ratio is theirs; a DIFFERENTIAL refresh
cancelled at the time limit counts with the limit as its time (\`≥\`, \`≤\`: its ratio is an upper
bound) and its query takes no further cycles. Autovacuum is off: ${
  o.vacuumBuffers
    ? 'the stream tables are not vacuumed or analyzed during the run, and the change buffers are vacuumed and analyzed (without truncation) before each TPC-H cycle and Nexmark batch, when refreshes have emptied them, as autovacuum may do'
    : 'neither the stream tables nor the change buffers are vacuumed or analyzed during the run'
}. The refresh matrix
(\`bench/refresh-matrix.ts\`) vacuums both stream tables once they are filled, then runs three
rounds per cell: fresh changes, one read of the changed table, a refresh of each stream table,
the two alternating which goes first; a cell shows the medians. "changes consumed" counts
change-buffer rows (an update is two), "ST rows changed" the rows the DIFFERENTIAL refresh
inserted plus deleted in the stream table.`;

function render(r: Report): string {
  const m = r.machine;
  const command = `npm run bench:report -- ${process.argv.slice(2).join(' ')}`.trim();
  const lines: string[] = [
    '# Refresh benchmark report',
    '',
    `Generated by \`${command}\` in ${Math.round(r.seconds)} s at commit ${m.commit}.`,
    '',
    `Machine: ${m.cores} cores (${m.cpu}), ${m.memoryGb} GB; ${m.postgres}; settings ${Object.entries(
      LAB_SETTINGS,
    )
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}, fsync off.`,
    '',
    fairness(r.o),
    '',
    '## Summary',
    '',
    '| section | median FULL/DIFF (DIFFERENTIAL queries) | queries DIFFERENTIAL | median FULL/DIFF (all) |',
    '| --- | --- | --- | --- |',
  ];
  if (r.matrix) {
    const n = r.matrix.filter((c) => c.diffAction === 'DIFFERENTIAL').length;
    lines.push(
      `| refresh matrix | ${formatRatio(matrixMedian(r.matrix))} | ${n} of ${r.matrix.length} cells | |`,
    );
  }
  const pairSections: [string, PairResult[]][] = [
    ...r.tpch.map(([sf, results]): [string, PairResult[]] => [
      `TPC-H SF ${sf}, ${r.o.change * 100}% change`,
      results,
    ]),
    ...(r.nexmark ? [[nexmarkTitle(r.o), r.nexmark] as [string, PairResult[]]] : []),
  ];
  for (const [title, results] of pairSections) {
    const med = pairMedians(results);
    lines.push(
      `| ${title} | ${formatRatio(med.differential)} | ${med.n} of ${results.length} | ${formatRatio(med.all)} |`,
    );
  }
  if (r.matrix) {
    lines.push(
      '',
      '## Refresh matrix',
      '',
      `Sizes ${r.o.matrixSizes.join(', ')} rows, change rates ${r.o.matrixRates.join(', ')}% (70% UPDATE, 15% DELETE, 15% INSERT).`,
      '',
      matrixTable(r.matrix),
    );
  }
  for (const [title, results] of pairSections) {
    lines.push('', `## ${title}`, '', pairTable(results), '', 'Compiled to FULL:', '', fallbackList(results));
  }
  return `${lines.join('\n')}\n`;
}

const nexmarkTitle = (o: Options) =>
  `Nexmark, ${o.nexmarkEvents} events, batches of ${o.nexmarkBatch} new events plus updates and deletes`;

async function main(): Promise<void> {
  const o = options();
  if (!o) {
    process.stdout.write(HELP);
    return;
  }
  const started = Date.now();
  const tpch: [number, PairResult[]][] = [];
  let matrix: Cell[] | undefined;
  let nexmark: PairResult[] | undefined;
  if (o.sections.has('matrix')) {
    matrix = await refreshMatrix({ sizes: o.matrixSizes, rates: o.matrixRates, check: o.check });
  }
  const server = await startPostgres({ throwaway: true, settings: LAB_SETTINGS });
  let m: Machine;
  try {
    m = await machine(server);
    if (o.sections.has('tpch')) for (const sf of o.tpch) tpch.push([sf, await runTpch(server, sf, o)]);
    if (o.sections.has('nexmark')) nexmark = await runNexmark(server, o);
  } finally {
    await server.stop();
  }
  const report: Report = { o, machine: m, tpch, seconds: (Date.now() - started) / 1000 };
  if (matrix) report.matrix = matrix;
  if (nexmark) report.nexmark = nexmark;
  await writeFile(o.out, render(report));
  console.log(`wrote ${o.out}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
