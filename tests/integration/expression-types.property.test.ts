// Property test of the compiler's type inference (sql/compiler/types.ts) against PostgreSQL: for
// random expressions over columns of every exact type and of floats, whatever type the compiler
// claims must be the type PostgreSQL gives the expression. A wrong "exact" claim would make a
// float sum algebraic, and a wrong integer width would change what a finalized sum divides to.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyze } from '../../sql/compiler/analyze.js';
import { loadParser } from '../../sql/compiler/ast.js';
import { expressionType } from '../../sql/compiler/types.js';
import { table } from '../support/compiler.js';
import { migratedDatabase, type TestDb } from '../support/db.js';

const COLUMNS: [string, string][] = [
  ['s', 'smallint'],
  ['i', 'integer'],
  ['b', 'bigint'],
  ['n', 'numeric'],
  ['n2', 'numeric(10,2)'],
  ['f', 'double precision'],
  ['r', 'real'],
  ['x', 'text'],
];

const LITERALS = [
  '0',
  '1',
  '-3',
  '2147483648',
  '-2147483648',
  '9223372036854775808',
  '1.5',
  '1e3',
  '100.00',
  'NULL',
];
const CASTS = [
  'smallint',
  'integer',
  'bigint',
  'numeric',
  'numeric(8,3)',
  'double precision',
  'real',
  'text',
];
const OPERATORS = ['+', '-', '*', '/', '%'];

const expression: fc.Arbitrary<string> = fc.letrec<{ e: string }>((tie) => ({
  e: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(...COLUMNS.filter(([c]) => c !== 'x').map(([c]) => `t.${c}`)),
    fc.constantFrom(...LITERALS),
    fc.tuple(tie('e'), fc.constantFrom(...OPERATORS), tie('e')).map(([l, op, r]) => `(${l} ${op} ${r})`),
    tie('e').map((e) => `(-${e})`),
    fc.tuple(tie('e'), fc.constantFrom(...CASTS)).map(([e, type]) => `CAST(${e} AS ${type})`),
    fc
      .tuple(tie('e'), fc.option(tie('e'), { nil: undefined }))
      .map(
        ([then, otherwise]) => `CASE WHEN t.x = 'a' THEN ${then}${otherwise ? ` ELSE ${otherwise}` : ''} END`,
      ),
    fc.array(tie('e'), { minLength: 1, maxLength: 3 }).map((args) => `COALESCE(${args.join(', ')})`),
    fc.tuple(tie('e'), tie('e')).map(([l, r]) => `NULLIF(${l}, ${r})`),
  ),
})).e;

// The expression as a target of the query itself, of a subquery in FROM, and of an aggregate of one.
const query = fc.oneof(
  expression.map((e) => `SELECT ${e} AS c FROM public.t`),
  expression.map((e) => `SELECT q.c FROM (SELECT ${e} AS c FROM public.t) q`),
  fc
    .tuple(fc.constantFrom('sum', 'avg', 'min', 'max', 'count'), expression)
    .map(([agg, e]) => `SELECT q.c FROM (SELECT t.x, ${agg}(${e}) AS c FROM public.t GROUP BY t.x) q`),
);

describe('inferred expression types agree with PostgreSQL', () => {
  let db: TestDb;

  beforeAll(async () => {
    await loadParser();
    db = await migratedDatabase();
    await db.admin.query(`CREATE TABLE t (${COLUMNS.map(([c, type]) => `${c} ${type}`).join(', ')})`);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('claims no type PostgreSQL does not give, for the query as written and as stored', async () => {
    const sql = db.admin;
    const facts = (definingQuery: string) => ({
      definingQuery,
      outputColumns: [],
      relations: [table(1, 't', COLUMNS)],
      aggregateNames: new Set(['count', 'sum', 'avg', 'min', 'max']),
      volatileNames: new Set<string>(),
    });
    const inferred = (definingQuery: string) => {
      const op = analyze(facts(definingQuery));
      if (op.kind !== 'select') throw new Error(`a ${op.kind} query`);
      const target = op.stmt.targetList?.[0];
      const val = target && 'ResTarget' in target ? target.ResTarget.val : undefined;
      return val && expressionType(val, op.from);
    };
    let known = 0;
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(query, async (q) => {
        await sql.query('BEGIN');
        try {
          await sql.query('SAVEPOINT probe');
          try {
            await sql.query(`CREATE VIEW public.v AS ${q}`);
          } catch {
            // PostgreSQL refuses it (no such operator, ambiguous types): nothing to compare.
            await sql.query('ROLLBACK TO SAVEPOINT probe');
            return;
          }
          accepted++;
          await sql.query('SET LOCAL search_path = pg_catalog, pg_temp');
          const { rows } = await sql.query<{ type: string; stored: string }>(
            `SELECT format_type(a.atttypid, a.atttypmod) AS type,
                    regexp_replace(pg_get_viewdef('public.v'::regclass, false), ';\\s*$', '') AS stored
               FROM pg_attribute a WHERE a.attrelid = 'public.v'::regclass AND a.attname = 'c'`,
          );
          const { type, stored } = rows[0] ?? { type: '', stored: '' };
          for (const text of [q, stored]) {
            const claim = inferred(text);
            if (!claim) continue;
            known++;
            const expected =
              claim.kind === 'exact' && claim.name === claim.base ? type.replace(/\(.*\)$/, '') : type;
            expect(claim.name, `${text}\nPostgreSQL: ${type}`).toBe(expected);
          }
        } finally {
          await sql.query('ROLLBACK');
        }
      }),
      { numRuns: Number(process.env.PGTRICKLE_PROPERTY_RUNS ?? 25) * 20 },
    );
    // The property means little unless PostgreSQL took most queries and the compiler typed many.
    expect(accepted).toBeGreaterThan(0);
    expect(known).toBeGreaterThan(accepted / 4);
  });
});
