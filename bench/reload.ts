// What a full reload of a stream table costs with the index its differential refreshes need,
// against the reload of a FULL-mode stream table, which has none; and what the ways around that
// index would cost. Each variant runs in a transaction that is rolled back, side by side on the
// same rows, the order rotated from round to round; the table shows medians and ratios to the
// reload without an index.
//   npx tsx bench/reload.ts --rows 1000000 --rounds 3
import { parseArgs } from 'node:util';
import { withLabDatabase } from './lab.js';
import { median } from './report/markdown.js';

interface Variant {
  name: string;
  /** Whether other sessions can go on reading the stream table while it runs, and see the old rows. */
  readersUnaffected: boolean;
  statements: string[];
}

const FILL = 'SELECT o.id, o.cid, o.amount FROM orders o';
const KEYED_FILL = 'SELECT o.id, o.cid, o.amount, o.id FROM orders o';

const VARIANTS: Variant[] = [
  {
    name: 'FULL mode: DELETE, INSERT (no index)',
    readersUnaffected: true,
    statements: ['DELETE FROM st_plain', `INSERT INTO st_plain ${FILL}`],
  },
  {
    name: 'differential storage: DELETE, INSERT (index kept)',
    readersUnaffected: true,
    statements: ['DELETE FROM st_keyed', `INSERT INTO st_keyed ${KEYED_FILL}`],
  },
  {
    name: 'DROP INDEX, DELETE, INSERT, CREATE INDEX',
    readersUnaffected: false,
    statements: [
      'DROP INDEX st_keyed_key',
      'DELETE FROM st_keyed',
      `INSERT INTO st_keyed ${KEYED_FILL}`,
      'CREATE INDEX st_keyed_key ON st_keyed (k)',
    ],
  },
  {
    name: 'TRUNCATE, INSERT (index kept)',
    readersUnaffected: false,
    statements: ['TRUNCATE st_keyed', `INSERT INTO st_keyed ${KEYED_FILL}`],
  },
  {
    name: 'TRUNCATE, DROP INDEX, INSERT, CREATE INDEX',
    readersUnaffected: false,
    statements: [
      'TRUNCATE st_keyed',
      'DROP INDEX st_keyed_key',
      `INSERT INTO st_keyed ${KEYED_FILL}`,
      'CREATE INDEX st_keyed_key ON st_keyed (k)',
    ],
  },
];

export async function reloadCosts(rows: number, rounds: number): Promise<{ variant: Variant; ms: number }[]> {
  return withLabDatabase(async (client) => {
    // The refresh matrix's orders, and its scan stream table in both storage shapes.
    await client.query(`
      CREATE TABLE orders (id bigint PRIMARY KEY, cid int NOT NULL, amount numeric(12,2) NOT NULL);
      INSERT INTO orders SELECT g, 1 + (g::bigint * 7919) % ${Math.max(100, Math.floor(rows / 100))}, (g::bigint * 104729) % 1000
        FROM generate_series(1, ${rows}) g;
      CREATE TABLE st_plain (id bigint, cid int, amount numeric(12,2));
      CREATE TABLE st_keyed (id bigint, cid int, amount numeric(12,2), k bigint);
      INSERT INTO st_plain ${FILL};
      INSERT INTO st_keyed ${KEYED_FILL};
      CREATE INDEX st_keyed_key ON st_keyed (k);`);
    const runs = VARIANTS.map(() => [] as number[]);
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < VARIANTS.length; i++) {
        const at = (i + round) % VARIANTS.length;
        const variant = VARIANTS[at] as Variant;
        // Each variant finds the tables as the others do: no dead rows, pages cached.
        await client.query('VACUUM st_plain');
        await client.query('VACUUM st_keyed');
        await client.query('CHECKPOINT');
        await client.query('BEGIN');
        const start = process.hrtime.bigint();
        for (const sql of variant.statements) await client.query(sql);
        runs[at]?.push(Number(process.hrtime.bigint() - start) / 1e6);
        await client.query('ROLLBACK');
      }
    }
    return VARIANTS.map((variant, i) => ({ variant, ms: median(runs[i] ?? []) }));
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { rows: { type: 'string', default: '1000000' }, rounds: { type: 'string', default: '3' } },
  });
  const results = await reloadCosts(Number(values.rows), Number(values.rounds));
  const base = results[0]?.ms ?? Number.NaN;
  console.log(`reload of ${values.rows} rows, median of ${values.rounds} rounds`);
  console.log(
    'variant                                            |      ms | / FULL mode | readers unaffected',
  );
  for (const { variant, ms } of results) {
    console.log(
      [
        variant.name.padEnd(50),
        ms.toFixed(0).padStart(7),
        `${(ms / base).toFixed(2)}×`.padStart(11),
        variant.readersUnaffected ? 'yes' : 'no: ACCESS EXCLUSIVE until commit',
      ].join(' | '),
    );
  }
}
