import { beforeAll, describe, expect, it } from 'vitest';
import { SCHEMA } from '../../bench/tpch/generate.js';
import { loadParser, type Node, parseStatements, selectOf, stringValue } from '../../sql/compiler/ast.js';
import { targetName } from '../../sql/compiler/delta/names.js';
import type { CompileFacts, RelationFacts } from '../../sql/compiler/facts.js';
import { compile, table } from '../support/compiler.js';
import { TPCH_DEFINITIONS } from '../support/tpch-definitions.js';

// format_type() of the types bench/tpch/generate.ts declares.
function formatType(typeName: Node | undefined): string {
  const t = typeName && 'TypeName' in typeName ? typeName.TypeName : undefined;
  const name = stringValue(t?.names?.at(-1));
  const mods = (t?.typmods ?? []).map((m) => ('A_Const' in m ? String(m.A_Const.ival?.ival ?? 0) : '?'));
  const suffix = mods.length > 0 ? `(${mods.join(',')})` : '';
  switch (name) {
    case 'int4':
      return 'integer';
    case 'numeric':
      return `numeric${suffix}`;
    case 'bpchar':
      return `character${suffix}`;
    case 'varchar':
      return `character varying${suffix}`;
    case 'date':
      return 'date';
    default:
      throw new Error(`type ${name} in the TPC-H schema`);
  }
}

/** The TPC-H tables as catalog facts, read from the DDL the benchmark runs. */
function tpchRelations(): RelationFacts[] {
  return parseStatements(SCHEMA).flatMap((stmt, i) => {
    if (!('CreateStmt' in stmt)) return [];
    const columns: [string, string][] = [];
    const key: string[] = [];
    const isKey = (c: Node) => 'Constraint' in c && c.Constraint.contype === 'CONSTR_PRIMARY';
    for (const e of stmt.CreateStmt.tableElts ?? []) {
      if ('ColumnDef' in e) {
        const name = e.ColumnDef.colname ?? '';
        columns.push([name, formatType({ TypeName: e.ColumnDef.typeName ?? {} })]);
        if (e.ColumnDef.constraints?.some(isKey)) key.push(name);
      } else if (isKey(e) && 'Constraint' in e) {
        key.push(...(e.Constraint.keys ?? []).map((k) => stringValue(k) ?? ''));
      }
    }
    return [table(1000 + i, stmt.CreateStmt.relation?.relname ?? '', columns, key)];
  });
}

function tpchFacts(id: string): CompileFacts {
  const definingQuery = TPCH_DEFINITIONS[id] ?? '';
  const targets = selectOf(parseStatements(definingQuery)[0])?.targetList ?? [];
  return {
    definingQuery,
    outputColumns: targets.map((t) => ({ name: targetName(t), type: 'numeric' })),
    relations: tpchRelations(),
    aggregateNames: new Set(['count', 'sum', 'avg', 'min', 'max']),
    volatileNames: new Set(),
  };
}

const orders = table(100, 'orders', [
  ['id', 'integer'],
  ['cid', 'integer'],
  ['amount', 'numeric(10,2)'],
  ['price', 'double precision'],
  ['qty', 'smallint'],
]);

function facts(definingQuery: string): CompileFacts {
  const targets = selectOf(parseStatements(definingQuery)[0])?.targetList ?? [];
  return {
    definingQuery,
    outputColumns: targets.map((t) => ({ name: targetName(t), type: 'numeric' })),
    relations: [orders],
    aggregateNames: new Set(['count', 'sum', 'avg', 'min', 'max']),
    volatileNames: new Set(),
  };
}

describe('algebraic aggregates of expressions', () => {
  beforeAll(loadParser);

  it('compiles every TPC-H query with an exact SUM or AVG to the algebraic strategy', () => {
    const strategies = Object.fromEntries(
      Object.keys(TPCH_DEFINITIONS).map((id) => [id, compile(tpchFacts(id)).strategy]),
    );
    expect(strategies).toEqual({
      q01: 'aggregate',
      q02: 'multiset',
      q03: 'aggregate',
      q04: 'aggregate',
      q05: 'aggregate',
      q06: 'aggregate',
      // Q07, Q08 and Q09 sum a column of their subquery in FROM.
      q07: 'aggregate',
      q08: 'aggregate',
      q09: 'aggregate',
      q10: 'aggregate',
      // HAVING compares with a value of another query.
      q11: 'aggregate_recompute',
      q12: 'aggregate',
      q13: 'aggregate',
      q14: 'aggregate',
      q15: 'multiset',
      // count(DISTINCT …).
      q16: 'aggregate_recompute',
      q17: 'aggregate',
      q18: 'aggregate',
      q19: 'aggregate',
      q20: 'multiset',
      q21: 'aggregate',
      q22: 'aggregate',
    });
  });

  it('finalizes a sum of numeric expressions as numeric and of integer CASEs as bigint', () => {
    const q01 = compile(tpchFacts('q01')).deltaSql;
    expect(q01).toContain('"sum_disc_price" = CAST(CASE WHEN n.__pgt_n2 > 0 THEN n.__pgt_s2 END AS numeric)');
    const q12 = compile(tpchFacts('q12')).deltaSql;
    expect(q12).toContain('"high_line_count" = CAST(CASE WHEN n.__pgt_n0 > 0 THEN n.__pgt_s0 END AS bigint)');
  });

  it('feeds the argument of a sum over a subquery column from the delta arms of the subquery', () => {
    const plan = compile(tpchFacts('q07'));
    expect(plan.hiddenColumns.map((c) => c.name)).toEqual([
      '__pgt_row_id',
      '__pgt_count',
      '__pgt_s0',
      '__pgt_n0',
    ]);
    // One arm per relation of the subquery's join, each weighted by the subquery row's weight.
    const delta = plan.deltaSql.slice(plan.deltaSql.indexOf('__pgt_delta AS ('));
    expect(
      delta.match(/shipping\.volume AS __pgt_a0, 1 \* shipping\.__pgt_w AS __pgt_w FROM \( SELECT /g),
    ).toHaveLength(6);
  });

  it('keeps an integer sum integer inside the final expression, so division stays integer division', () => {
    const plan = compile(
      facts('SELECT o.cid, sum(o.qty * 2) / 3 AS third FROM public.orders o GROUP BY o.cid'),
    );
    expect(plan.strategy).toBe('aggregate');
    expect(plan.deltaSql).toContain(
      '"third" = CAST(CASE WHEN n.__pgt_n0 > 0 THEN n.__pgt_s0 END AS bigint) / 3',
    );
  });

  it('keeps MIN and MAX of expressions in a state column of the expression type', () => {
    const plan = compile(
      facts('SELECT o.cid, max(o.amount * o.qty) AS top FROM public.orders o GROUP BY o.cid'),
    );
    expect(plan.strategy).toBe('aggregate');
    expect(plan.hiddenColumns).toContainEqual({ name: '__pgt_m0', type: 'numeric' });
  });

  it('recomputes sums of floats, of unknown types, with FILTER or DISTINCT, and aggregates of other schemas', () => {
    for (const query of [
      'SELECT o.cid, sum(o.price * 2) AS s FROM public.orders o GROUP BY o.cid',
      'SELECT o.cid, sum(o.amount * o.price) AS s FROM public.orders o GROUP BY o.cid',
      'SELECT o.cid, avg(CASE WHEN o.id > 1 THEN o.price ELSE 0 END) AS s FROM public.orders o GROUP BY o.cid',
      'SELECT o.cid, sum(abs(o.amount)) AS s FROM public.orders o GROUP BY o.cid',
      'SELECT o.cid, sum(o.amount) FILTER (WHERE o.id > 1) AS s FROM public.orders o GROUP BY o.cid',
      'SELECT o.cid, sum(DISTINCT o.amount) AS s FROM public.orders o GROUP BY o.cid',
      'SELECT o.cid, public.sum(o.amount) AS s FROM public.orders o GROUP BY o.cid',
      'SELECT s.cid, sum(s.v) AS s FROM (SELECT o.cid, o.price AS v FROM public.orders o) s GROUP BY s.cid',
    ]) {
      expect(compile(facts(query)).strategy, query).toBe('aggregate_recompute');
    }
  });
});
