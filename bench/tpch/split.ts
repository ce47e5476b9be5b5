// TPC-H queries that aggregate over a grouped subquery, refreshed three ways side by side after
// each change cycle: the query as one FULL stream table, as one AUTO stream table (the delta
// recomputes the subquery's groups it needs), and split by hand into a stream table of the
// grouped subquery plus a stream table of the rest over it, so that the groups are stored and
// maintained instead of recomputed. The split's time is both refreshes. Ratios, one run.
//   npx tsx bench/tpch/split.ts --queries q15,q11,q13,q20 --change 0.01 --cycles 5
import { parseArgs } from 'node:util';
import pg from 'pg';
import { planStreamTable } from '../../cluster/planner/install.js';
import { migrate } from '../../sql/migrate.js';
import { withLabDatabase } from '../lab.js';
import { median } from '../report/markdown.js';
import { changeCycle, loadTpch } from './generate.js';
import { tpchQueries } from './queries.js';

interface Split {
  /** The grouped subquery, as a stream table named `<query>_groups`. */
  groups: string;
  /** The rest of the query over `<query>_groups`. */
  rest: (groups: string) => string;
  /** The output columns, to compare the split with the query. */
  columns: string;
}

const SF = 0.1;

const SPLITS: Record<string, Split> = {
  q15: {
    groups: `SELECT l_suppkey AS supplier_no, sum(l_extendedprice * (1 - l_discount)) AS total_revenue
      FROM lineitem WHERE l_shipdate >= date '1996-01-01' AND l_shipdate < date '1996-01-01' + interval '3 months'
      GROUP BY l_suppkey`,
    rest: (g) => `SELECT s_suppkey, s_name, s_address, s_phone, total_revenue FROM supplier, ${g}
      WHERE s_suppkey = supplier_no AND total_revenue = (SELECT max(total_revenue) FROM ${g})`,
    columns: 's_suppkey, s_name, s_address, s_phone, total_revenue',
  },
  q11: {
    groups: `SELECT ps_partkey, sum(ps_supplycost * ps_availqty) AS value FROM partsupp, supplier, nation
      WHERE ps_suppkey = s_suppkey AND s_nationkey = n_nationkey AND n_name = 'GERMANY' GROUP BY ps_partkey`,
    // The sum over all German parts is the sum of the per-part sums.
    rest: (g) =>
      `SELECT ps_partkey, value FROM ${g} WHERE value > (SELECT sum(value) * ${Number((0.0001 / SF).toPrecision(6))} FROM ${g})`,
    columns: 'ps_partkey, value',
  },
  q13: {
    groups: `SELECT c_custkey, count(o_orderkey) AS c_count
      FROM customer LEFT OUTER JOIN orders ON c_custkey = o_custkey AND o_comment NOT LIKE '%special%requests%'
      GROUP BY c_custkey`,
    rest: (g) => `SELECT c_count, count(*) AS custdist FROM ${g} GROUP BY c_count`,
    columns: 'c_count, custdist',
  },
  q20: {
    groups: `SELECT l_partkey, l_suppkey, 0.5 * sum(l_quantity) AS half FROM lineitem
      WHERE l_shipdate >= date '1994-01-01' AND l_shipdate < date '1994-01-01' + interval '1 year'
      GROUP BY l_partkey, l_suppkey`,
    // The correlated sum over no lineitem is NULL and keeps no row, as the inner join does.
    rest: (g) => `SELECT s_name, s_address FROM supplier, nation WHERE s_suppkey IN (
        SELECT ps_suppkey FROM partsupp JOIN ${g} h ON h.l_partkey = ps_partkey AND h.l_suppkey = ps_suppkey
         WHERE ps_partkey IN (SELECT p_partkey FROM part WHERE p_name LIKE 'forest%') AND ps_availqty > h.half)
      AND s_nationkey = n_nationkey AND n_name = 'CANADA'`,
    columns: 's_name, s_address',
  },
};

interface Row {
  query: string;
  fullMs: number;
  autoMs: number;
  splitMs: number;
  divergent: number;
}

export async function splitTimes(ids: string[], change: number, cycles: number): Promise<Row[]> {
  const unknown = ids.filter((id) => !(id in SPLITS));
  if (unknown.length > 0)
    throw new Error(`no split for ${unknown.join(', ')}: there is one for ${Object.keys(SPLITS)}`);
  return withLabDatabase(async (client) => {
    const create = async (name: string, sql: string, mode: 'FULL' | 'AUTO') => {
      await client.query('SELECT pgtrickle.create_stream_table($1, $2, refresh_mode => $3)', [
        name,
        sql,
        mode,
      ]);
      if (mode === 'FULL') return;
      const { rows } = await client.query<{ id: string }>('SELECT pgtrickle._resolve($1) AS id', [name]);
      const outcome = await planStreamTable(client, String(rows[0]?.id));
      if (outcome.mode !== 'DIFFERENTIAL') throw new Error(`${name}: ${outcome.reason}`);
      await client.query('SELECT pgtrickle.refresh_stream_table($1)', [name]);
    };
    const refresh = async (...names: string[]) => {
      const start = process.hrtime.bigint();
      for (const name of names) await client.query('SELECT pgtrickle.refresh_stream_table($1)', [name]);
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    await migrate(client);
    await client.query('SET pgtrickle.auto_cost_fallback = off');
    const state = await loadTpch(client, { sf: SF, seed: 1 });
    const queries = tpchQueries(SF).filter((q) => ids.includes(q.id));
    for (const q of queries) {
      const split = SPLITS[q.id] as Split;
      await create(`${q.id}_full`, q.sql, 'FULL');
      await create(`${q.id}_auto`, q.sql, 'AUTO');
      await create(`${q.id}_groups`, split.groups, 'AUTO');
      await create(`${q.id}_split`, split.rest(`${q.id}_groups`), 'AUTO');
    }
    const times = new Map(
      queries.map((q) => [q.id, { full: [] as number[], auto: [] as number[], split: [] as number[] }]),
    );
    for (let cycle = 0; cycle < cycles; cycle++) {
      await changeCycle(client, state, change);
      for (const q of queries) {
        const t = times.get(q.id);
        if (!t) continue;
        const ways: [number[], string[]][] = [
          [t.full, [`${q.id}_full`]],
          [t.auto, [`${q.id}_auto`]],
          [t.split, [`${q.id}_groups`, `${q.id}_split`]],
        ];
        for (let i = 0; i < ways.length; i++) {
          const [runs, names] = ways[(i + cycle) % ways.length] as [number[], string[]];
          runs.push(await refresh(...names));
        }
      }
    }
    const rows: Row[] = [];
    for (const q of queries) {
      const { columns } = SPLITS[q.id] as Split;
      const { rows: d } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM (
           (SELECT ${columns} FROM ${q.id}_split EXCEPT ALL SELECT ${columns} FROM ${q.id}_full) UNION ALL
           (SELECT ${columns} FROM ${q.id}_full EXCEPT ALL SELECT ${columns} FROM ${q.id}_split)) x`,
      );
      const t = times.get(q.id);
      if (!t) continue;
      rows.push({
        query: q.id,
        fullMs: median(t.full),
        autoMs: median(t.auto),
        splitMs: median(t.split),
        divergent: d[0]?.n ?? -1,
      });
    }
    return rows;
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      queries: { type: 'string', default: Object.keys(SPLITS).join(',') },
      change: { type: 'string', default: '0.01' },
      cycles: { type: 'string', default: '5' },
    },
  });
  const rows = await splitTimes(values.queries.split(','), Number(values.change), Number(values.cycles));
  console.log(
    `TPC-H SF ${SF}, ${Number(values.change) * 100}% change per cycle, medians of ${values.cycles} cycles`,
  );
  console.log(
    'query |   FULL ms |   AUTO ms | FULL/AUTO |  split ms | FULL/split | split vs FULL divergent rows',
  );
  for (const r of rows) {
    console.log(
      [
        r.query.padEnd(5),
        r.fullMs.toFixed(1).padStart(9),
        r.autoMs.toFixed(1).padStart(9),
        `${(r.fullMs / r.autoMs).toFixed(2)}×`.padStart(9),
        r.splitMs.toFixed(1).padStart(9),
        `${(r.fullMs / r.splitMs).toFixed(2)}×`.padStart(10),
        String(r.divergent),
      ].join(' | '),
    );
  }
}
