import { beforeAll, describe, expect, it } from 'vitest';
import { analyze } from '../../sql/compiler/analyze.js';
import { loadParser } from '../../sql/compiler/ast.js';
import type { CompileFacts } from '../../sql/compiler/facts.js';
import { expressionType, namedType, sumType } from '../../sql/compiler/types.js';
import { table } from '../support/compiler.js';

const t = table(100, 't', [
  ['s', 'smallint'],
  ['i', 'integer'],
  ['b', 'bigint'],
  ['n', 'numeric'],
  ['n2', 'numeric(10,2)'],
  ['f', 'double precision'],
  ['r', 'real'],
  ['x', 'text'],
  ['d', 'date'],
]);
const u = table(200, 'u', [
  ['i', 'integer'],
  ['y', 'bigint'],
]);

/** The type names inferred for each output expression of a query, undefined where unknown. */
function types(query: string): (string | undefined)[] {
  const facts: CompileFacts = {
    definingQuery: query,
    outputColumns: [],
    relations: [t, u],
    aggregateNames: new Set(['count', 'sum', 'avg', 'min', 'max']),
    volatileNames: new Set(),
  };
  const op = analyze(facts);
  if (op.kind !== 'select' && op.kind !== 'aggregate') throw new Error(`a ${op.kind} query`);
  return (op.stmt.targetList ?? []).map((target) => {
    const val = 'ResTarget' in target ? target.ResTarget.val : undefined;
    return val && expressionType(val, op.from)?.name;
  });
}

/** The type of one expression over public.t. */
function typeOf(expression: string): string | undefined {
  return types(`SELECT ${expression} FROM public.t`)[0];
}

describe('expression types', () => {
  beforeAll(loadParser);

  it('reads a column type from the facts, keeping its modifier', () => {
    expect(typeOf('t.n2')).toBe('numeric(10,2)');
    expect(typeOf('t.f')).toBe('double precision');
    expect(typeOf('t.x')).toBe('text');
  });

  it('gives arithmetic on exact numbers the wider input type, as PostgreSQL operators do', () => {
    expect(typeOf('t.s + t.s')).toBe('smallint');
    expect(typeOf('t.s * 2')).toBe('integer');
    expect(typeOf('t.i - t.b')).toBe('bigint');
    expect(typeOf('t.i / 2')).toBe('integer');
    expect(typeOf('t.b / t.s')).toBe('bigint');
    expect(typeOf('t.i * 1.5')).toBe('numeric');
    expect(typeOf('t.n2 * ((1)::numeric - t.n2)')).toBe('numeric');
    expect(typeOf('-t.s')).toBe('smallint');
    expect(typeOf('+t.b')).toBe('bigint');
  });

  it('types integer literals by the smallest of int4, int8 and numeric that holds them', () => {
    expect(typeOf('t.i + 2147483647')).toBe('integer');
    expect(typeOf('t.i + 2147483648')).toBe('bigint');
    expect(typeOf('t.i + -2147483648')).toBe('integer');
    expect(typeOf('t.i + 9223372036854775808')).toBe('numeric');
    expect(typeOf('t.i + 1e3')).toBe('numeric');
    expect(typeOf('t.i + 0')).toBe('integer');
  });

  it('gives CASE and COALESCE the widest of their non-NULL branches, a missing ELSE included', () => {
    expect(typeOf("CASE WHEN t.x = 'a' THEN 1 ELSE 0 END")).toBe('integer');
    expect(typeOf("CASE WHEN t.x = 'a' THEN t.n2 END")).toBe('numeric');
    expect(typeOf("CASE WHEN t.x = 'a' THEN t.i ELSE t.b END")).toBe('bigint');
    expect(typeOf("CASE WHEN t.x = 'a' THEN NULL ELSE t.s END")).toBe('smallint');
    expect(typeOf('CASE t.i WHEN 1 THEN t.s ELSE 2.5 END')).toBe('numeric');
    expect(typeOf('COALESCE(t.i, 0)')).toBe('integer');
    expect(typeOf('COALESCE(t.s, t.n)')).toBe('numeric');
  });

  it('gives NULLIF its first argument type unless a numeric promotes it', () => {
    expect(typeOf('NULLIF(t.s, t.b)')).toBe('smallint');
    expect(typeOf('NULLIF(t.b, 0)')).toBe('bigint');
    expect(typeOf('NULLIF(t.i, 1.5)')).toBe('numeric');
    expect(typeOf('NULLIF(t.n, t.i)')).toBe('numeric');
  });

  it('takes the target of a cast to an exact type, whatever its argument', () => {
    expect(typeOf('t.f::numeric')).toBe('numeric');
    expect(typeOf('t.x::integer')).toBe('integer');
    expect(typeOf('CAST(t.n AS numeric(10,2))')).toBe('numeric');
    expect(typeOf('t.f::bigint')).toBe('bigint');
    expect(typeOf('t.f::smallint + 1')).toBe('integer');
  });

  it('knows nothing of floats, other operators and functions, untyped literals or unqualified type names', () => {
    for (const e of [
      't.f + 1',
      't.r * 2',
      't.i * t.f',
      "CASE WHEN t.x = 'a' THEN t.f ELSE 0 END",
      "CASE WHEN t.x = 'a' THEN NULL END",
      'COALESCE(t.i, t.f)',
      'NULLIF(t.i, t.f)',
      't.d - t.d',
      't.i % 2',
      'abs(t.i)',
      "t.i + '1'",
      "'1'",
      'NULL',
      't.i::double precision',
      't.i::int8',
      't.i::integer[]',
      't.nope',
      'x.i',
    ]) {
      expect(typeOf(e), e).toBeUndefined();
    }
  });

  it('resolves an unqualified column only when exactly one relation has it', () => {
    expect(types('SELECT b + 1 FROM public.t')).toEqual(['bigint']);
    expect(types('SELECT y, i FROM public.t JOIN public.u ON t.s = u.y')).toEqual(['bigint', undefined]);
  });

  it('infers the columns of subqueries and WITH queries in FROM from their targets, recursively', () => {
    expect(
      types(
        'SELECT s.v, s.k, s.w FROM (SELECT q.v, q.k, q.v * q.k AS w FROM (SELECT t.n2 * 2 AS v, t.i AS k FROM public.t) q) s',
      ),
    ).toEqual(['numeric', 'integer', 'numeric']);
    expect(types('WITH c AS (SELECT t.n2 AS v FROM public.t) SELECT c.v, c.v + 1 AS w FROM c')).toEqual([
      'numeric(10,2)',
      'numeric',
    ]);
    expect(types('SELECT s.f, s.i FROM (SELECT t.i, t.f FROM public.t) s(f, i)')).toEqual([
      'integer',
      'double precision',
    ]);
    expect(
      types('WITH c AS (SELECT t.i AS p, t.f AS q FROM public.t) SELECT x.p, x.q FROM c AS x(q, p)'),
    ).toEqual(['double precision', 'integer']);
    expect(types('SELECT s.v FROM (SELECT t.i AS v, t.f AS v FROM public.t) s')).toEqual([undefined]);
    expect(types('SELECT s.w, s.v FROM (SELECT t.i AS v, t.f AS v FROM public.t) s(w)')).toEqual([
      'integer',
      'double precision',
    ]);
  });

  it('types the built-in aggregates of a grouped subquery in FROM', () => {
    expect(
      types(
        `SELECT g.si, g.sb, g.av, g.n, g.mx, g.sf FROM (
           SELECT t.i, sum(t.i) AS si, sum(t.b) AS sb, avg(t.s) AS av, count(*) AS n, max(t.n2) AS mx, sum(t.f) AS sf
           FROM public.t GROUP BY t.i) g`,
      ),
    ).toEqual(['bigint', 'numeric', 'numeric', 'bigint', 'numeric', undefined]);
  });

  it('gives a UNION ALL column the widest of its inputs', () => {
    expect(
      types('SELECT v.v FROM (SELECT t.i AS v FROM public.t UNION ALL SELECT u.y FROM public.u) v'),
    ).toEqual(['bigint']);
    expect(
      types('SELECT v.v FROM (SELECT t.i AS v FROM public.t UNION ALL SELECT t.f FROM public.t) v'),
    ).toEqual([undefined]);
  });

  it('sums integers into bigint and everything wider into numeric', () => {
    expect(sumType('smallint')).toBe('bigint');
    expect(sumType('integer')).toBe('bigint');
    expect(sumType('bigint')).toBe('numeric');
    expect(sumType('numeric')).toBe('numeric');
    expect(namedType('integer(5)').kind).toBe('other');
  });
});
