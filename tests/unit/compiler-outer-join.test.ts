import { beforeAll, describe, expect, it } from 'vitest';
import { loadParser } from '../../sql/compiler/ast.js';
import { allOf, anyOf, changed, flagsSql } from '../../sql/compiler/delta/guard.js';
import type { CompileFacts } from '../../sql/compiler/facts.js';
import { compile, refusal, table } from '../support/compiler.js';

const orders = table(
  100,
  'orders',
  [
    ['id', 'integer'],
    ['cid', 'integer'],
  ],
  ['id'],
);
const customers = table(
  200,
  'customers',
  [
    ['id', 'integer'],
    ['region', 'text'],
  ],
  ['id'],
);
const lines = table(300, 'lines', [
  ['oid', 'integer'],
  ['item', 'text'],
]);

function facts(definingQuery: string, outputs: string[]): CompileFacts {
  return {
    definingQuery,
    outputColumns: outputs.map((name) => ({ name, type: 'text' })),
    relations: [orders, customers, lines],
    aggregateNames: new Set(['count', 'sum']),
    volatileNames: new Set(),
  };
}

const join = (type: string) =>
  facts(`SELECT o.id, c.region FROM (public.orders o ${type} JOIN public.customers c ON ((o.cid = c.id)))`, [
    'id',
    'region',
  ]);

describe('compiler: outer joins', () => {
  beforeAll(loadParser);

  it('maintains a LEFT join as the inner join plus one antijoin arm that null-extends the right side', () => {
    const plan = compile(join('LEFT'));
    expect(plan.strategy).toBe('multiset');
    const delta = plan.deltaSql;
    expect(delta).toContain('FROM __pgt_d0 AS o JOIN __pgt_o1 AS c ON o.cid = c.id');
    expect(delta).toContain('FROM public.orders AS o JOIN __pgt_d1 AS c ON o.cid = c.id');
    // The antijoin's weights are computed once, in a CTE of their own.
    expect(delta).toContain(
      '__pgt_g0 AS MATERIALIZED (SELECT __pgt_x.__pgt_c0, __pgt_x.__pgt_c1, __pgt_v.__pgt_w FROM',
    );
    expect(delta).toContain(
      '1 * __pgt_l_o.__pgt_w AS __pgt_w FROM __pgt_g0 AS __pgt_l_o CROSS JOIN LATERAL ( SELECT __pgt_l_o.__pgt_c0 AS id, __pgt_l_o.__pgt_c1 AS cid ) AS o LEFT JOIN public.customers AS c ON false',
    );
    expect(delta.match(/LEFT JOIN/g)).toHaveLength(1);
  });

  it('runs the antijoin arm when either side changed, an inner arm only when the changes it reads exist', () => {
    const delta = compile(join('LEFT')).deltaSql;
    expect(delta).toContain(
      'ON false WHERE (SELECT __pgt_f.changed_0 OR __pgt_f.changed_1 FROM __pgt_flags AS __pgt_f)',
    );
    expect(delta).toContain(
      'AS c ON o.cid = c.id WHERE (SELECT __pgt_f.changed_0 FROM __pgt_flags AS __pgt_f)',
    );
    expect(delta).toContain(
      'AS c ON o.cid = c.id WHERE (SELECT __pgt_f.changed_1 FROM __pgt_flags AS __pgt_f)',
    );
  });

  it('joins a neighbour of an outer join to the outer join as it is now, since it has no old state', () => {
    const plan = compile(
      facts(
        'SELECT o.id, c.region, l.item FROM (public.orders o LEFT JOIN public.customers c ON ((o.cid = c.id))), public.lines l WHERE l.oid = o.id',
        ['id', 'region', 'item'],
      ),
    );
    expect(plan.deltaSql).toContain('LEFT JOIN public.customers AS c ON o.cid = c.id, __pgt_d2 AS l');
    expect(plan.deltaSql).toContain('JOIN __pgt_o1 AS c ON o.cid = c.id, __pgt_o2 AS l');
    expect(plan.deltaSql).not.toContain('__pgt_o0');
  });

  it('weighs an affected row by its multiplicity now and before, times whether it had a match', () => {
    const delta = compile(join('LEFT')).deltaSql;
    // The preserved row is found by its primary key, the other columns compared NULL-safely.
    expect(delta).toContain(
      '(SELECT count(*) FROM public.orders AS o WHERE o.id = __pgt_x.__pgt_c0 AND o.cid IS NOT DISTINCT FROM __pgt_x.__pgt_c1) AS m',
    );
    expect(delta).toContain('(SELECT count(*) FROM public.customers AS c WHERE o.cid = c.id) AS n');
    // The partners' delta weight is joined by the ON condition and grouped with the row's own.
    expect(delta).toContain('0 AS __pgt_dl, 1 * c.__pgt_w AS __pgt_s');
    expect(delta).toContain('JOIN __pgt_d1 AS c ON o.cid = c.id');
    expect(delta).toContain(
      '(CASE WHEN __pgt_m.n = 0 THEN __pgt_m.m ELSE 0 END) - (CASE WHEN __pgt_m.n = __pgt_x.__pgt_s THEN __pgt_m.m - __pgt_x.__pgt_dl ELSE 0 END) AS __pgt_w',
    );
    expect(delta).toContain('OFFSET 0 ) AS __pgt_m');
  });

  it('null-extends the left side of a RIGHT join, keeping the join order', () => {
    const delta = compile(join('RIGHT')).deltaSql;
    expect(delta).toContain('FROM public.orders AS o RIGHT JOIN (__pgt_g0 AS __pgt_l_c CROSS JOIN LATERAL');
    expect(delta).toContain(
      'CROSS JOIN LATERAL ( SELECT __pgt_l_c.__pgt_c0 AS id, __pgt_l_c.__pgt_c1 AS region ) AS c) ON false',
    );
  });

  it('gives a FULL join one antijoin arm per side', () => {
    const delta = compile(join('FULL')).deltaSql;
    expect(delta).toContain('AS o LEFT JOIN public.customers AS c ON false');
    expect(delta).toContain('FROM public.orders AS o RIGHT JOIN (__pgt_g1 AS __pgt_l_c');
    expect(delta.match(/ON false/g)).toHaveLength(2);
  });

  it('does not key rows of an outer join by the sources keys, since a null-extended row has none', () => {
    expect(compile(join('LEFT')).strategy).toBe('multiset');
    expect(compile(join('INNER')).strategy).toBe('keyed');
  });

  it('keeps counts per customer over a LEFT join algebraically (TPC-H Q13 shape)', () => {
    const plan = compile(
      facts(
        'SELECT c.id, count(o.id) AS n FROM (public.customers c LEFT JOIN public.orders o ON ((o.cid = c.id))) GROUP BY c.id',
        ['id', 'n'],
      ),
    );
    expect(plan.strategy).toBe('aggregate');
    expect(plan.deltaSql).toContain('AS c LEFT JOIN public.orders AS o ON false');
  });

  it('binds every alias of a preserved join tree to the affected row', () => {
    const plan = compile(
      facts(
        'SELECT c.region, o.id, l.item FROM ((public.customers c JOIN public.orders o ON ((o.cid = c.id))) LEFT JOIN public.lines l ON ((l.oid = o.id)))',
        ['region', 'id', 'item'],
      ),
    );
    expect(plan.deltaSql).toContain(
      'AS __pgt_l_c CROSS JOIN LATERAL ( SELECT __pgt_l_c.__pgt_c0 AS id, __pgt_l_c.__pgt_c1 AS region ) AS c CROSS JOIN LATERAL ( SELECT __pgt_l_c.__pgt_c2 AS id, __pgt_l_c.__pgt_c3 AS cid ) AS o LEFT JOIN public.lines AS l ON false',
    );
  });

  it('compares the key of a relation null-extended inside the preserved side NULL-safely', () => {
    const plan = compile(
      facts(
        'SELECT c.region, o.id, l.item FROM ((public.customers c LEFT JOIN public.orders o ON ((o.cid = c.id))) LEFT JOIN public.lines l ON ((l.oid = o.id)))',
        ['region', 'id', 'item'],
      ),
    );
    expect(plan.deltaSql).toContain(
      'c.id = __pgt_x.__pgt_c0 AND c.region IS NOT DISTINCT FROM __pgt_x.__pgt_c1',
    );
    expect(plan.deltaSql).toContain('o.id IS NOT DISTINCT FROM __pgt_x.__pgt_c2');
  });

  it('needs no relation on the null-extended side: a function there has no changes', () => {
    const plan = compile(
      facts(
        'SELECT o.id, g.x FROM (public.orders o LEFT JOIN generate_series(1, 3) g(x) ON ((g.x = o.cid)))',
        ['id', 'x'],
      ),
    );
    expect(plan.deltaSql).toContain('0 AS __pgt_s FROM');
    expect(plan.deltaSql).not.toContain('AS __pgt_s FROM (SELECT DISTINCT');
    expect(plan.deltaSql).toContain('(SELECT __pgt_f.changed_0 FROM __pgt_flags AS __pgt_f)');
  });

  it('gives the same plan text for the same outer join', () => {
    expect(compile(join('FULL'))).toEqual(compile(join('FULL')));
  });

  it.each([
    [
      'SELECT o.id FROM (public.orders o LEFT JOIN public.customers c USING (id))',
      'USING or NATURAL in a LEFT OUTER JOIN',
    ],
    [
      'SELECT o.id FROM (public.orders o NATURAL FULL JOIN public.customers c)',
      'USING or NATURAL in a FULL OUTER JOIN',
    ],
    [
      'SELECT g.x FROM (generate_series(1, 3) g(x) LEFT JOIN public.orders o ON ((o.id = g.x)))',
      'a function or VALUES list on the preserved side of an outer join',
    ],
    [
      'SELECT s.id FROM ((SELECT o.id, c.id FROM public.orders o, public.customers c) s(id) FULL JOIN public.lines l ON ((l.oid = s.id)))',
      'two columns of s with the same name on the preserved side of an outer join',
    ],
  ])('refuses %s, naming %s', (query, construct) => {
    expect(refusal(facts(query, ['x']))).toBe(construct);
  });
});

describe('arm guards', () => {
  it('prints a conjunction of flags in source order, deduplicated', () => {
    expect(flagsSql(allOf([changed(1), allOf([changed(0), changed(1)])]))).toBe(
      '__pgt_f.changed_0 AND __pgt_f.changed_1',
    );
  });

  it('absorbs a conjunction into a disjunction that already has one of its flags', () => {
    expect(flagsSql(anyOf([changed(0), changed(1), allOf([changed(0), changed(1)])]))).toBe(
      '__pgt_f.changed_0 OR __pgt_f.changed_1',
    );
    expect(flagsSql(allOf([changed(2), anyOf([changed(0), changed(1)])]))).toBe(
      '__pgt_f.changed_2 AND (__pgt_f.changed_0 OR __pgt_f.changed_1)',
    );
  });
});
