import { beforeAll, describe, expect, it } from 'vitest';
import { deparse, loadParser, parseStatements, selectOf } from '../../sql/compiler/ast.js';
import type { CompileFacts } from '../../sql/compiler/facts.js';
import { unnest } from '../../sql/compiler/unnest.js';
import { compile, refusal, table } from '../support/compiler.js';

// orders.id and customers.id are primary keys; orders.cid and orders.amount may be NULL.
const orders = table(
  100,
  'orders',
  [
    ['id', 'integer'],
    ['cid', 'integer'],
    ['amount', 'numeric'],
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

function facts(definingQuery: string, outputs: string[]): CompileFacts {
  return {
    definingQuery,
    outputColumns: outputs.map((name) => ({ name, type: 'text' })),
    relations: [orders, customers],
    aggregateNames: new Set(['count', 'sum', 'avg', 'min', 'max']),
    volatileNames: new Set(),
  };
}

/** The defining query with its subqueries rewritten, as SQL text. */
function rewritten(query: string): string {
  const stmt = selectOf(parseStatements(query)[0]);
  if (!stmt) throw new Error('not a SELECT');
  const { relations } = facts(query, []);
  const scope = {
    facts: facts(query, []),
    relations: new Map(relations.map((r) => [`${r.schema}.${r.name}`, r])),
    counter: { next: 0 },
  };
  return deparse({ SelectStmt: unnest(stmt, scope) });
}

describe('subqueries in WHERE and HAVING', () => {
  beforeAll(loadParser);

  it('joins EXISTS to its correlation keys grouped, so duplicates in the subquery do not duplicate outer rows', () => {
    expect(
      rewritten(
        'SELECT c.id FROM public.customers c WHERE EXISTS (SELECT * FROM public.orders o WHERE o.cid = c.id AND o.amount > 1)',
      ),
    ).toBe(
      'SELECT c.id FROM public.customers AS c, ( SELECT o.cid AS __pgt_k0 FROM public.orders AS o WHERE o.amount > 1 AND o.cid IS NOT NULL GROUP BY o.cid ) AS __pgt_sq0 WHERE c.id = __pgt_sq0.__pgt_k0',
    );
  });

  it('turns NOT EXISTS into a left join kept where the never-NULL key found no match', () => {
    expect(
      rewritten(
        'SELECT c.id FROM public.customers c WHERE NOT EXISTS (SELECT 1 FROM public.orders o WHERE o.cid = c.id)',
      ),
    ).toBe(
      'SELECT c.id FROM public.customers AS c LEFT JOIN ( SELECT o.cid AS __pgt_k0 FROM public.orders AS o WHERE o.cid IS NOT NULL GROUP BY o.cid ) AS __pgt_sq0 ON c.id = __pgt_sq0.__pgt_k0 WHERE __pgt_sq0.__pgt_k0 IS NULL',
    );
  });

  it('drops NULLs of an IN subquery, which can only make IN unknown, never true', () => {
    expect(
      rewritten('SELECT c.id FROM public.customers c WHERE c.id IN (SELECT o.cid FROM public.orders o)'),
    ).toBe(
      'SELECT c.id FROM public.customers AS c, ( SELECT o.cid AS __pgt_k0 FROM public.orders AS o WHERE o.cid IS NOT NULL GROUP BY o.cid ) AS __pgt_sq0 WHERE c.id = __pgt_sq0.__pgt_k0',
    );
  });

  it('keeps a grouped IN subquery whole under a projection of its column', () => {
    expect(
      rewritten(
        'SELECT c.id FROM public.customers c WHERE c.id IN (SELECT o.cid FROM public.orders o GROUP BY o.cid HAVING count(*) > 2)',
      ),
    ).toContain(
      '( SELECT __pgt_in.v AS __pgt_k0 FROM ( SELECT o.cid FROM public.orders AS o GROUP BY o.cid HAVING count(*) > 2 ) AS __pgt_in(v) WHERE __pgt_in.v IS NOT NULL GROUP BY __pgt_in.v ) AS __pgt_sq0',
    );
  });

  it('rewrites NOT IN as an anti-join when neither side can be NULL (primary key columns)', () => {
    expect(
      rewritten('SELECT c.id FROM public.customers c WHERE NOT (c.id IN (SELECT o.id FROM public.orders o))'),
    ).toBe(
      'SELECT c.id FROM public.customers AS c LEFT JOIN ( SELECT o.id AS __pgt_k0 FROM public.orders AS o WHERE o.id IS NOT NULL GROUP BY o.id ) AS __pgt_sq0 ON c.id = __pgt_sq0.__pgt_k0 WHERE __pgt_sq0.__pgt_k0 IS NULL',
    );
  });

  it('refuses NOT IN over a column that may be NULL: x NOT IN (…, NULL) is never true', () => {
    expect(
      refusal(
        facts('SELECT c.id FROM public.customers c WHERE NOT (c.id IN (SELECT o.cid FROM public.orders o))', [
          'id',
        ]),
      ),
    ).toBe('NOT IN with a subquery or test value that may be NULL');
    expect(
      refusal(
        facts('SELECT o.id FROM public.orders o WHERE NOT (o.cid IN (SELECT c.id FROM public.customers c))', [
          'id',
        ]),
      ),
    ).toBe('NOT IN with a subquery or test value that may be NULL');
  });

  it('accepts NOT IN over a nullable column filtered IS NOT NULL in the subquery', () => {
    expect(
      refusal(
        facts(
          'SELECT c.id FROM public.customers c WHERE NOT (c.id IN (SELECT o.cid FROM public.orders o WHERE o.cid IS NOT NULL))',
          ['id'],
        ),
      ),
    ).toBeUndefined();
  });

  it('tests EXISTS with one inequality by the extremes of the group: some value differs when the least or greatest does', () => {
    expect(
      rewritten(
        'SELECT o.id FROM public.orders o WHERE EXISTS (SELECT 1 FROM public.orders o2 WHERE o2.cid = o.cid AND o2.id <> o.id)',
      ),
    ).toBe(
      'SELECT o.id FROM public.orders AS o, ( SELECT o2.cid AS __pgt_k0, min(o2.id) AS __pgt_lo, max(o2.id) AS __pgt_hi FROM public.orders AS o2 WHERE o2.cid IS NOT NULL AND o2.id IS NOT NULL GROUP BY o2.cid ) AS __pgt_sq0 WHERE o.cid = __pgt_sq0.__pgt_k0 AND (__pgt_sq0.__pgt_lo <> o.id OR __pgt_sq0.__pgt_hi <> o.id)',
    );
  });

  it('keeps a row under NOT EXISTS with an inequality when the comparison is unknown (a NULL outer value)', () => {
    expect(
      rewritten(
        'SELECT o.id FROM public.orders o WHERE NOT EXISTS (SELECT 1 FROM public.orders o2 WHERE o2.cid = o.cid AND o.amount < o2.amount)',
      ),
    ).toBe(
      'SELECT o.id FROM public.orders AS o LEFT JOIN ( SELECT o2.cid AS __pgt_k0, min(o2.amount) AS __pgt_lo, max(o2.amount) AS __pgt_hi FROM public.orders AS o2 WHERE o2.cid IS NOT NULL AND o2.amount IS NOT NULL GROUP BY o2.cid ) AS __pgt_sq0 ON o.cid = __pgt_sq0.__pgt_k0 WHERE __pgt_sq0.__pgt_k0 IS NULL OR NOT (COALESCE(__pgt_sq0.__pgt_hi > o.amount, false))',
    );
  });

  it('cross-joins an uncorrelated scalar aggregate, which has exactly one row even over no rows', () => {
    expect(
      rewritten(
        'SELECT c.id FROM public.customers c WHERE c.id > (SELECT avg(o.amount) FROM public.orders o)',
      ),
    ).toBe(
      'SELECT c.id FROM public.customers AS c, ( SELECT avg(o.amount) AS __pgt_v FROM public.orders AS o ) AS __pgt_sq0 WHERE c.id > __pgt_sq0.__pgt_v',
    );
  });

  it('joins a correlated scalar aggregate grouped by its correlation keys when a comparison filters on it', () => {
    expect(
      rewritten(
        'SELECT o.id FROM public.orders o WHERE o.amount < (SELECT 0.5 * avg(o2.amount) FROM public.orders o2 WHERE o2.cid = o.cid)',
      ),
    ).toBe(
      'SELECT o.id FROM public.orders AS o, ( SELECT o2.cid AS __pgt_k0, 0.5 * avg(o2.amount) AS __pgt_v FROM public.orders AS o2 WHERE o2.cid IS NOT NULL GROUP BY o2.cid ) AS __pgt_sq0 WHERE o.cid = __pgt_sq0.__pgt_k0 AND o.amount < __pgt_sq0.__pgt_v',
    );
  });

  it('groups by an uncorrelated scalar in HAVING, which keeps the groups since it is one row', () => {
    expect(
      rewritten(
        'SELECT o.cid FROM public.orders o GROUP BY o.cid HAVING sum(o.amount) > (SELECT avg(o2.amount) FROM public.orders o2)',
      ),
    ).toBe(
      'SELECT o.cid FROM public.orders AS o, ( SELECT avg(o2.amount) AS __pgt_v FROM public.orders AS o2 ) AS __pgt_sq0 GROUP BY o.cid, __pgt_sq0.__pgt_v HAVING sum(o.amount) > __pgt_sq0.__pgt_v',
    );
  });

  it.each([
    [
      // COUNT over no rows is 0, not NULL: an inner join would drop the rows that compare with 0.
      'SELECT c.id FROM public.customers c WHERE c.id > (SELECT count(*) FROM public.orders o WHERE o.cid = c.id)',
      'a correlated scalar subquery whose value on no rows is not NULL (COUNT, coalesce, CASE)',
    ],
    [
      'SELECT c.id FROM public.customers c WHERE c.id > (SELECT coalesce(sum(o.amount), 0) FROM public.orders o WHERE o.cid = c.id)',
      'a correlated scalar subquery whose value on no rows is not NULL (COUNT, coalesce, CASE)',
    ],
    [
      // Without an aggregate it may return no row or several (an error in PostgreSQL).
      'SELECT c.id FROM public.customers c WHERE c.id = (SELECT o.cid FROM public.orders o)',
      'a scalar subquery that is not one aggregate without GROUP BY',
    ],
    [
      'SELECT c.id FROM public.customers c WHERE c.id = (SELECT max(o.cid) FROM public.orders o GROUP BY o.amount)',
      'a scalar subquery that is not one aggregate without GROUP BY',
    ],
    [
      'SELECT c.id FROM public.customers c WHERE EXISTS (SELECT 1 FROM public.orders o WHERE o.cid <> c.id)',
      'an EXISTS correlated by an inequality alone, without an equality',
    ],
    [
      'SELECT c.id FROM public.customers c WHERE EXISTS (SELECT 1 FROM public.orders o WHERE o.cid = c.id AND o.id < c.id AND o.amount > c.id)',
      'a correlated subquery with more than one inequality between outer and inner',
    ],
    [
      'SELECT c.id FROM public.customers c WHERE c.id IN (SELECT o.cid FROM public.orders o WHERE o.id <> c.id)',
      'a correlated subquery whose correlation is not an equality of an outer and an inner expression',
    ],
    [
      'SELECT c.id FROM public.customers c WHERE EXISTS (SELECT 1 FROM public.orders o WHERE o.cid = c.id OR o.id = c.id)',
      'a correlated subquery whose correlation is not an equality of an outer and an inner expression',
    ],
    [
      'SELECT c.id FROM public.customers c WHERE c.id > 1 OR EXISTS (SELECT 1 FROM public.orders o WHERE o.cid = c.id)',
      'EXISTS inside another expression (under OR, CASE, …)',
    ],
    [
      'SELECT c.id FROM public.customers c WHERE EXISTS (SELECT 1 FROM public.orders o)',
      'an uncorrelated EXISTS',
    ],
    [
      'SELECT c.id FROM public.customers c WHERE coalesce((SELECT max(o.amount) FROM public.orders o WHERE o.cid = c.id), 0) > 1',
      'a correlated scalar subquery that is not an operand of a comparison in WHERE',
    ],
    [
      'SELECT sum(o.amount) AS s FROM public.orders o HAVING sum(o.amount) > (SELECT avg(o2.amount) FROM public.orders o2)',
      'a scalar subquery in HAVING without GROUP BY',
    ],
    [
      'SELECT c.id FROM public.customers c WHERE c.id IN (SELECT o.cid FROM public.orders o LIMIT 1)',
      'LIMIT or OFFSET',
    ],
  ])('refuses %s, naming %s', (query, construct) => {
    expect(refusal(facts(query, ['x']))).toBe(construct);
  });

  it('compiles the rewritten query, the grouped subquery with a delta of its touched groups now and before', () => {
    const plan = compile(
      facts(
        'SELECT c.region FROM public.customers c WHERE EXISTS (SELECT 1 FROM public.orders o WHERE o.cid = c.id)',
        ['region'],
      ),
    );
    expect(plan.strategy).toBe('multiset');
    // The key is filtered IS NOT NULL, so the touched groups are found by a hashable IN.
    expect(plan.deltaSql).toContain(
      '__pgt_y AS (SELECT o.cid AS __pgt_c0 FROM public.orders AS o WHERE o.cid IS NOT NULL AND o.cid IN (SELECT __pgt_in.__pgt_c0 FROM __pgt_x AS __pgt_in))',
    );
    // Before = each group's row count now minus the changes' (before-state.ts): a group existed
    // while that count was above zero.
    expect(plan.deltaSql).toContain('sum(1) AS __pgt_n FROM __pgt_y AS __pgt_in GROUP BY __pgt_in.__pgt_c0');
    expect(plan.deltaSql).toContain(
      'sum(- __pgt_in.__pgt_w) AS __pgt_n FROM __pgt_x AS __pgt_in GROUP BY __pgt_in.__pgt_c0',
    );
    expect(plan.deltaSql).toContain('HAVING sum(__pgt_p.__pgt_n) > 0');
  });

  it('asks for the touched groups of one key that leads an index as an array, which reads the index', () => {
    const query =
      'SELECT c.region FROM public.customers c WHERE EXISTS (SELECT 1 FROM public.orders o WHERE o.cid = c.id)';
    const indexed = facts(query, ['region']);
    indexed.relations = [{ ...orders, indexed: ['cid'] }, customers];
    expect(compile(indexed).deltaSql).toContain(
      '__pgt_y AS (SELECT o.cid AS __pgt_c0 FROM public.orders AS o WHERE o.cid IS NOT NULL AND o.cid = ANY (ARRAY(SELECT DISTINCT __pgt_in.__pgt_c0 FROM __pgt_x AS __pgt_in)))',
    );
    // Several keys stay a semi-join: beside it, the array would be looked up again in every
    // index probe the semi-join makes.
    const pairs = facts(
      'SELECT c.region FROM public.customers c WHERE EXISTS (SELECT 1 FROM public.orders o WHERE o.cid = c.id AND o.amount = c.id)',
      ['region'],
    );
    pairs.relations = [{ ...orders, indexed: ['cid', 'amount'] }, customers];
    expect(compile(pairs).deltaSql).not.toContain('= ANY (ARRAY(SELECT DISTINCT');
  });

  it('rebuilds the groups before from aggregate states for COUNT, SUM and AVG, from the rows otherwise', () => {
    const algebraic = compile(
      facts(
        'SELECT o.id FROM public.orders o WHERE o.amount < (SELECT 0.5 * avg(o2.amount) FROM public.orders o2 WHERE o2.cid = o.cid)',
        ['id'],
      ),
    ).deltaSql;
    expect(algebraic).toContain('sum(1 * __pgt_in.__pgt_c1::numeric) AS __pgt_bs0');
    expect(algebraic).toContain('sum((- __pgt_in.__pgt_w) * __pgt_in.__pgt_c1::numeric) AS __pgt_bs0');
    expect(algebraic).toContain(
      '0.5 * (CASE WHEN __pgt_b.__pgt_bc0 > 0 THEN __pgt_b.__pgt_bs0 / __pgt_b.__pgt_bc0 END)',
    );
    expect(algebraic).not.toContain('AS __pgt_u GROUP BY');
    // The largest amount before cannot be told from the largest now and the changes.
    const rows = compile(
      facts(
        'SELECT o.id FROM public.orders o WHERE o.amount < (SELECT max(o2.amount) FROM public.orders o2 WHERE o2.cid = o.cid)',
        ['id'],
      ),
    ).deltaSql;
    expect(rows).toContain('- __pgt_w FROM __pgt_x ) AS __pgt_u GROUP BY __pgt_c0, __pgt_c1');
  });

  it('finds touched groups of a nullable key with IS NOT DISTINCT FROM as well', () => {
    const plan = compile(
      facts('SELECT s.cid, s.n FROM (SELECT o.cid, count(*) AS n FROM public.orders o GROUP BY o.cid) s', [
        'cid',
        'n',
      ]),
    );
    expect(plan.deltaSql).toContain(
      'WHERE o.cid IN (SELECT __pgt_in.__pgt_c0 FROM __pgt_x AS __pgt_in) OR (o.cid IS NULL AND EXISTS (SELECT FROM __pgt_x AS __pgt_in WHERE o.cid IS NOT DISTINCT FROM __pgt_in.__pgt_c0))',
    );
  });

  it('computes a joined grouped subquery only for keys of rows the block filters itself', () => {
    const filtered = compile(
      facts(
        "SELECT c.id FROM public.customers c WHERE c.region = 'north' AND EXISTS (SELECT 1 FROM public.orders o WHERE o.cid = c.id)",
        ['id'],
      ),
    ).deltaSql;
    // The customers of the region now and among the changes: a superset of the keys any arm joins.
    expect(filtered).toMatch(
      /WHERE __pgt_in\.__pgt_c0 IN \(SELECT c\.id FROM public\.customers AS c WHERE c\.region = 'north' UNION ALL SELECT c\.id FROM __pgt_d\d AS c WHERE c\.region = 'north'\)/,
    );
    const unfiltered = compile(
      facts(
        'SELECT c.id FROM public.customers c WHERE EXISTS (SELECT 1 FROM public.orders o WHERE o.cid = c.id)',
        ['id'],
      ),
    ).deltaSql;
    expect(unfiltered).not.toContain('UNION ALL SELECT c.id FROM __pgt_d');
    // Its primary key IS NOT NULL holds for every customer: no narrower than no filter at all.
    const keyNotNull = compile(
      facts(
        'SELECT c.id FROM public.customers c WHERE c.id IS NOT NULL AND EXISTS (SELECT 1 FROM public.orders o WHERE o.cid = c.id)',
        ['id'],
      ),
    ).deltaSql;
    expect(keyNotNull).not.toContain('UNION ALL SELECT c.id FROM __pgt_d');
  });

  it('narrows a grouped subquery grouped again on its own key to the touched keys', () => {
    const plan = compile(
      facts(
        'SELECT c.id FROM public.customers c WHERE c.id IN (SELECT o.cid FROM public.orders o GROUP BY o.cid HAVING count(*) > 1)',
        ['id'],
      ),
    );
    // Inside the subquery, before its GROUP BY: PostgreSQL would not move the outer IN there.
    expect(plan.deltaSql).toContain(
      'FROM ( SELECT o.cid FROM public.orders AS o WHERE o.cid IN (SELECT __pgt_in.__pgt_c0 FROM __pgt_x AS __pgt_in) OR (o.cid IS NULL AND EXISTS',
    );
  });

  it('computes a scalar aggregate compared by equality once, not probed per row', () => {
    const plan = compile(
      facts(
        'SELECT o.id FROM public.orders o WHERE o.amount = (SELECT max(o2.amount) FROM public.orders o2)',
        ['id'],
      ),
    );
    expect(plan.deltaSql).not.toContain('OFFSET 0 ) AS __pgt_sq0');
  });

  it('nets a grouped delta whose rows can be compared, so a group that looks the same now and before drops out', () => {
    const keys = compile(
      facts(
        'SELECT c.region FROM public.customers c WHERE EXISTS (SELECT 1 FROM public.orders o WHERE o.cid = c.id)',
        ['region'],
      ),
    ).deltaSql;
    expect(keys).toContain('GROUP BY __pgt_k0 HAVING sum(__pgt_v.__pgt_w) <> 0');
    const values = compile(
      facts(
        'SELECT o.id FROM public.orders o WHERE o.amount < (SELECT 0.5 * avg(o2.amount) FROM public.orders o2 WHERE o2.cid = o.cid)',
        ['id'],
      ),
    ).deltaSql;
    expect(values).toMatch(/GROUP BY __pgt_k0, __pgt_v HAVING sum\(__pgt_v\.__pgt_w\) <> 0/);
    // string_agg's text would group, but an aggregate of unknown type may have no equality.
    const unknown = compile(
      facts(
        "SELECT s.cid, s.names FROM (SELECT o.cid, string_agg(o.amount::text, ',') AS names FROM public.orders o GROUP BY o.cid) s",
        ['cid', 'names'],
      ),
    ).deltaSql;
    expect(unknown).not.toContain('HAVING sum(__pgt_v.__pgt_w) <> 0');
  });

  it('probes a grouped subquery on the right of a left join by its ON equalities (NOT EXISTS)', () => {
    const plan = compile(
      facts(
        'SELECT c.id FROM public.customers c WHERE NOT EXISTS (SELECT 1 FROM public.orders o WHERE o.cid = c.id)',
        ['id'],
      ),
    );
    // Joined to the customers' changes, the keys as they were are read per change through LATERAL.
    expect(plan.deltaSql).toMatch(
      /FROM __pgt_d0 AS c JOIN LATERAL \( SELECT \* FROM \( SELECT \* FROM \( SELECT o\.cid AS __pgt_k0, 1 AS __pgt_w FROM public\.orders AS o WHERE o\.cid IS NOT NULL GROUP BY o\.cid \) AS __pgt_q UNION ALL/,
    );
  });

  it('probes a grouped subquery only on a key that is a column of a table it reads, which an index can serve', () => {
    // Nexmark's highest bid per window: the key is an expression, and a probe pushed below the
    // GROUP BY would filter a whole scan per partner row.
    const expression = compile(
      facts(
        'SELECT o.id FROM (public.orders o JOIN (SELECT max(o2.amount) AS top, (o2.cid / 10) AS bucket FROM public.orders o2 GROUP BY (o2.cid / 10)) m ON ((o.amount = m.top) AND ((o.cid / 10) = m.bucket)))',
        ['id'],
      ),
    ).deltaSql;
    expect(expression).not.toContain('JOIN LATERAL ( SELECT * FROM (');
    const column = compile(
      facts(
        'SELECT o.id FROM (public.orders o JOIN (SELECT max(o2.amount) AS top, o2.cid FROM public.orders o2 GROUP BY o2.cid) m ON ((o.amount = m.top) AND (o.cid = m.cid)))',
        ['id'],
      ),
    ).deltaSql;
    expect(column).toContain('JOIN LATERAL ( SELECT * FROM (');
  });

  it('probes the grouped subqueries of a grouped block where it reads its touched groups', () => {
    const plan = compile(
      facts(
        'SELECT c.region FROM public.customers c WHERE c.id IN (SELECT o.cid FROM public.orders o WHERE o.amount > (SELECT avg(o2.amount) FROM public.orders o2 WHERE o2.cid = o.id))',
        ['region'],
      ),
    );
    expect(plan.deltaSql).toContain('__pgt_y AS (SELECT o.cid AS __pgt_c0 FROM public.orders AS o, LATERAL');
  });

  it('computes the grouped subquery a scalar aggregate reads once for its value now, before and its delta', () => {
    const delta = compile(
      facts(
        'SELECT o.id FROM public.orders o WHERE o.amount = (SELECT max(s.total) FROM (SELECT o2.cid, sum(o2.amount) AS total FROM public.orders o2 GROUP BY o2.cid) s)',
        ['id'],
      ),
    ).deltaSql;
    expect(delta).toMatch(
      /(__pgt_g\d+) AS MATERIALIZED \(SELECT o2\.cid, sum\(o2\.amount\) AS total FROM public\.orders AS o2 GROUP BY o2\.cid\)/,
    );
    const cte = delta.match(/(__pgt_g\d+) AS MATERIALIZED \(SELECT o2\.cid, sum/)?.[1];
    expect(delta.split(`FROM ${cte} AS s`)).toHaveLength(4);
  });

  it('gives the same plan text for the same query', () => {
    const q = facts(
      'SELECT o.id FROM public.orders o WHERE o.amount < (SELECT avg(o2.amount) FROM public.orders o2 WHERE o2.cid = o.cid) AND NOT EXISTS (SELECT 1 FROM public.customers c WHERE c.id = o.cid)',
      ['id'],
    );
    expect(compile(q)).toEqual(compile(q));
  });
});

describe('touched groups of a recomputed aggregate', () => {
  beforeAll(loadParser);

  it('are found by a semi-join on the non-NULL keys, IS NOT DISTINCT FROM only for rows with a NULL key', () => {
    const plan = compile(
      facts(
        "SELECT o.id, o.cid, string_agg(c.region, ',') AS r FROM public.orders o JOIN public.customers c ON c.id = o.cid GROUP BY o.id, o.cid",
        ['id', 'cid', 'r'],
      ),
    );
    expect(plan.strategy).toBe('aggregate_recompute');
    expect(plan.deltaSql).toContain(
      'o.id IN (SELECT __pgt_a.__pgt_k0 FROM __pgt_aff AS __pgt_a) AND ((o.id, o.cid) IN (SELECT __pgt_a.__pgt_k0, __pgt_a.__pgt_k1 FROM __pgt_aff AS __pgt_a) OR (o.cid IS NULL AND EXISTS (SELECT FROM __pgt_aff AS __pgt_a WHERE (o.id IS NOT DISTINCT FROM __pgt_a.__pgt_k0 AND o.cid IS NOT DISTINCT FROM __pgt_a.__pgt_k1))))',
    );
  });
});
