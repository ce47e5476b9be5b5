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
