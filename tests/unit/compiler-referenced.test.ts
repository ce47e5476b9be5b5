import { beforeAll, describe, expect, it } from 'vitest';
import { loadParser } from '../../sql/compiler/ast.js';
import { referencedColumns } from '../../sql/compiler/delta/referenced.js';
import type { CompileFacts } from '../../sql/compiler/facts.js';
import { compile, table } from '../support/compiler.js';

const orders = table(100, 'orders', [
  ['id', 'integer'],
  ['cid', 'integer'],
  ['amount', 'numeric(10,2)'],
  ['note', 'text'],
]);
const customers = table(200, 'customers', [
  ['id', 'integer'],
  ['region', 'text'],
]);

function facts(definingQuery: string, outputs: string[]): CompileFacts {
  return {
    definingQuery,
    outputColumns: outputs.map((name) => ({ name, type: 'text' })),
    relations: [orders, customers],
    aggregateNames: new Set(['count', 'sum']),
    volatileNames: new Set(),
  };
}

const names = (q: string) => {
  const r = referencedColumns(facts(q, []));
  return r === 'all' ? r : [...r].sort();
};

describe('columns a query reads', () => {
  beforeAll(loadParser);

  it('are the names of every column reference, USING list included', () => {
    expect(names('SELECT o.cid, sum(o.amount) AS s FROM public.orders o GROUP BY o.cid')).toEqual([
      'amount',
      'cid',
    ]);
    expect(names('SELECT c.region FROM public.orders o JOIN public.customers c USING (id)')).toEqual([
      'id',
      'region',
    ]);
  });

  it('are every column when the query reads whole rows', () => {
    expect(names('SELECT * FROM public.orders o')).toBe('all');
    expect(names('SELECT o.* FROM public.orders o')).toBe('all');
    expect(names('SELECT row_to_json(o) AS j FROM public.orders o')).toBe('all');
    expect(names('SELECT count(orders) AS n FROM public.orders')).toBe('all');
    expect(names('SELECT c.region FROM public.orders o NATURAL JOIN public.customers c')).toBe('all');
  });

  it('tell a subquery column from a table of the same name by the scopes PostgreSQL resolves in', () => {
    // TPC-H Q8 and Q9: the outer query groups by a subquery column named as a table it reads.
    expect(
      names(`SELECT customers, sum(amount) AS s
        FROM (SELECT c.region AS customers, o.amount FROM public.orders o JOIN public.customers c ON o.cid = c.id) AS x
        GROUP BY customers`),
    ).toEqual(['amount', 'cid', 'customers', 'id', 'region']);
    expect(
      names('SELECT x.customers FROM (SELECT c.region AS customers FROM public.customers c) AS x'),
    ).toEqual(['customers', 'region']);
    // Inside the subquery, where no FROM item has such a column, the name is the table's row.
    expect(names('SELECT x.n FROM (SELECT count(customers) AS n FROM public.customers) AS x')).toBe('all');
    // A subquery in FROM does not see the items beside it, unless it is LATERAL.
    const beside = (item: string) =>
      names(`SELECT s.n FROM (SELECT c.region AS orders FROM public.customers c) AS a, ${item} AS s`);
    expect(beside('(SELECT count(orders) AS n FROM public.orders)')).toBe('all');
    expect(beside('LATERAL (SELECT o.id AS n FROM public.orders o WHERE o.note = orders)')).toEqual([
      'id',
      'n',
      'note',
      'orders',
      'region',
    ]);
    // Column aliases rename by position, and a join's ON clause sees only the join's sides.
    expect(names('SELECT customers FROM (SELECT c.region FROM public.customers c) AS x(customers)')).toEqual([
      'customers',
      'region',
    ]);
    expect(
      names(`SELECT x.customers FROM (SELECT c.region AS customers FROM public.customers c) AS x,
        public.orders o JOIN public.customers ON customers.id = o.cid AND customers IS NOT NULL`),
    ).toBe('all');
    expect(names('SELECT t.customers FROM (SELECT 1 AS id) AS t(customers)')).toEqual(['customers']);
    expect(names('SELECT f.customers FROM generate_series(1, 2) AS f(customers)')).toEqual(['customers']);
    expect(names('SELECT customers FROM generate_series(1, 2) AS f(customers)')).toEqual(['customers']);
    expect(names('SELECT customers FROM generate_series(1, 2) AS customers')).toBe('all');
  });

  it('leave out of the delta an UPDATE that changed none of them', () => {
    const plan = compile(
      facts('SELECT o.cid, sum(o.amount) AS s FROM public.orders o GROUP BY o.cid', ['cid', 's']),
    );
    expect(plan.deltaSql).toContain(
      `b.action <> 'U' OR ROW(b."new_2", b."new_3") IS DISTINCT FROM ROW(b."old_2", b."old_3")`,
    );
    const all = compile(facts('SELECT o.* FROM public.orders o', ['id', 'cid', 'amount', 'note']));
    expect(all.deltaSql).not.toContain('IS DISTINCT FROM ROW');
  });
});
