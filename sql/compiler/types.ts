// Result types of value expressions, resolved the way PostgreSQL resolves them, as far as the
// catalog facts tell. The algebraic aggregate strategy needs them: a SUM or AVG absorbs weighted
// deltas only when its argument is exact, and a finalized SUM must have PostgreSQL's result type
// for the expressions around it (bigint / integer divides whole, numeric / integer does not).
// Whatever is not covered here is unknown, and unknown means recompute: a wrong claim breaks I5.
import type { FromItem, QueryOp } from './analyze.js';
import { aliasRenamed, type Node, stringValue } from './ast.js';
import { outputNames } from './delta/names.js';

/** Narrowest first: each converts implicitly to those after it, so two of them combine into the wider. */
const EXACT = ['smallint', 'integer', 'bigint', 'numeric'] as const;
export type ExactBase = (typeof EXACT)[number];

export type SqlType =
  /** `name` keeps a column's modifier (numeric(15,2)); `base` is what operators see. */
  | { kind: 'exact'; base: ExactBase; name: string }
  /** Any other type a column has, named as format_type() prints it (text, double precision, …). */
  | { kind: 'other'; name: string };

// The names casts use: the grammar qualifies its keywords (integer is pg_catalog.int4), and
// pg_get_viewdef under an empty search_path qualifies every type outside pg_catalog.
const CAST_TARGETS: Readonly<Record<string, ExactBase>> = {
  int2: 'smallint',
  int4: 'integer',
  int8: 'bigint',
  numeric: 'numeric',
};

const ARITHMETIC = new Set(['+', '-', '*', '/']);

/** The type of a value expression over `from`, or undefined when it is not known for certain. */
export function expressionType(node: Node, from: FromItem[]): SqlType | undefined {
  if ('ColumnRef' in node) {
    const fields = (node.ColumnRef.fields ?? []).map((f) => stringValue(f));
    if (fields.some((f) => f === undefined)) return undefined;
    return columnType(fields as string[], from);
  }
  if ('A_Const' in node) return constantType(node.A_Const);
  if ('TypeCast' in node) return castType(node.TypeCast.typeName);
  if ('A_Expr' in node) return operatorType(node.A_Expr, from);
  if ('CaseExpr' in node) {
    const { args, defresult } = node.CaseExpr;
    const results = (args ?? []).map((w) => ('CaseWhen' in w ? w.CaseWhen.result : undefined));
    // A missing ELSE is NULL, which takes the type of the other branches.
    return commonType([...results, defresult], from);
  }
  if ('CoalesceExpr' in node) return commonType(node.CoalesceExpr.args ?? [], from);
  if ('FuncCall' in node) return aggregateType(node.FuncCall, from);
  return undefined;
}

/** The type of sum() over an exact type: integers widen to bigint, wider ones accumulate in numeric. */
export function sumType(arg: ExactBase): 'bigint' | 'numeric' {
  return arg === 'smallint' || arg === 'integer' ? 'bigint' : 'numeric';
}

/** A column's type as format_type() prints it. */
export function namedType(name: string): SqlType {
  const match = /^(smallint|integer|bigint|numeric)(\(\d+(,\s*\d+)?\))?$/.exec(name);
  const base = match?.[1] as ExactBase | undefined;
  // Only numeric takes a modifier; "integer(5)" is not a type format_type() prints.
  if (!base || (match?.[2] && base !== 'numeric')) return { kind: 'other', name };
  return { kind: 'exact', base, name };
}

function exact(base: ExactBase): SqlType {
  return { kind: 'exact', base, name: base };
}

/** Operators and CASE pick the widest exact input; any other input makes the result unknown here. */
function widest(types: (SqlType | undefined)[]): SqlType | undefined {
  let rank = -1;
  for (const t of types) {
    if (t?.kind !== 'exact') return undefined;
    rank = Math.max(rank, EXACT.indexOf(t.base));
  }
  const base = EXACT[rank];
  return base && exact(base);
}

function commonType(nodes: (Node | undefined)[], from: FromItem[]): SqlType | undefined {
  const typed = nodes.filter((n) => n !== undefined && !isNull(n)) as Node[];
  return widest(typed.map((n) => expressionType(n, from)));
}

function isNull(node: Node | undefined): boolean {
  return node === undefined || ('A_Const' in node && node.A_Const.isnull === true);
}

type Constant = Extract<Node, { A_Const: unknown }>['A_Const'];

function constantType(c: Constant): SqlType | undefined {
  if (c.ival) return exact('integer');
  const text = c.fval?.fval;
  if (text === undefined) return undefined;
  // The lexer passes integers beyond int4 on as text; PostgreSQL types them int4 if they still fit
  // (-2147483648, negated after lexing), else int8, else numeric.
  if (/^-?\d+$/.test(text)) {
    const value = BigInt(text);
    if (value >= -(2n ** 31n) && value < 2n ** 31n) return exact('integer');
    if (value >= -(2n ** 63n) && value < 2n ** 63n) return exact('bigint');
    return exact('numeric');
  }
  return /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) ? exact('numeric') : undefined;
}

type TypeName = Extract<Node, { TypeCast: unknown }>['TypeCast']['typeName'];

function castType(typeName: TypeName): SqlType | undefined {
  const names = (typeName?.names ?? []).map((n) => stringValue(n));
  if (!typeName || typeName.arrayBounds?.length || names.length !== 2 || names[0] !== 'pg_catalog')
    return undefined;
  const base = CAST_TARGETS[names[1] ?? ''];
  // A cast rounds to the target's scale: every value is exact, whatever the argument was.
  return base && exact(base);
}

type Operator = Extract<Node, { A_Expr: unknown }>['A_Expr'];

function operatorType(e: Operator, from: FromItem[]): SqlType | undefined {
  const name = e.name ?? [];
  const op = stringValue(name.at(-1));
  if (name.length > 2 || (name.length === 2 && stringValue(name[0]) !== 'pg_catalog')) return undefined;
  switch (e.kind) {
    case 'AEXPR_OP': {
      if (!op || !ARITHMETIC.has(op) || !e.rexpr) return undefined;
      const right = expressionType(e.rexpr, from);
      if (!e.lexpr) return op === '+' || op === '-' ? widest([right]) : undefined;
      return widest([expressionType(e.lexpr, from), right]);
    }
    case 'AEXPR_NULLIF': {
      if (!e.lexpr || !e.rexpr) return undefined;
      const left = expressionType(e.lexpr, from);
      const both = widest([left, expressionType(e.rexpr, from)]);
      // NULLIF returns the left input of its = operator, which every pair of integer types has as
      // is; only a numeric on either side promotes the other.
      return both?.kind === 'exact' && both.base !== 'numeric' ? widest([left]) : both;
    }
    default:
      return undefined;
  }
}

type Call = Extract<Node, { FuncCall: unknown }>['FuncCall'];

// Aggregates of a grouped subquery in FROM. Only the built-in ones: pg_get_viewdef qualifies any
// function that pg_catalog does not resolve.
function aggregateType(call: Call, from: FromItem[]): SqlType | undefined {
  const names = (call.funcname ?? []).map((n) => stringValue(n));
  if (call.over || names.length > 2 || (names.length === 2 && names[0] !== 'pg_catalog')) return undefined;
  const name = names.at(-1);
  if (name === 'count') return exact('bigint');
  const arg = call.args?.length === 1 && !call.agg_star ? call.args[0] : undefined;
  const type = arg && expressionType(arg, from);
  if (!type) return undefined;
  switch (name) {
    case 'sum':
      return type.kind === 'exact' ? exact(sumType(type.base)) : undefined;
    case 'avg':
      return type.kind === 'exact' ? exact('numeric') : undefined;
    case 'min':
    case 'max':
      // Aggregates drop the modifier; and an extreme of another type can be of a third one
      // (max of a varchar is a text): only exact ones are known.
      return type.kind === 'exact' ? exact(type.base) : undefined;
    default:
      return undefined;
  }
}

/** The columns a FROM item exposes by name; undefined when they are not known. */
type Columns = Map<string, () => SqlType | undefined>;

function columnType(fields: string[], from: FromItem[]): SqlType | undefined {
  if (fields.length === 2) {
    const [alias, column] = fields as [string, string];
    const item = findAlias(from, alias);
    return item ? columnsOf(item)?.get(column)?.() : undefined;
  }
  if (fields.length !== 1) return undefined;
  // An unqualified name must belong to exactly one item, and every item's columns must be known.
  const [column] = fields as [string];
  const owners: Columns[] = [];
  for (const item of leaves(from)) {
    const columns = columnsOf(item);
    if (!columns) return undefined;
    if (columns.has(column)) owners.push(columns);
  }
  return owners.length === 1 ? owners[0]?.get(column)?.() : undefined;
}

/** Scans, subqueries and constants, looking through joins (which cannot have aliases). */
function leaves(from: FromItem[]): FromItem[] {
  return from.flatMap((item) => (item.kind === 'join' ? leaves([item.left, item.right]) : [item]));
}

function findAlias(from: FromItem[], alias: string): FromItem | undefined {
  const found = leaves(from).filter((item) => 'alias' in item && item.alias === alias);
  return found.length === 1 ? found[0] : undefined;
}

function columnsOf(item: FromItem): Columns | undefined {
  switch (item.kind) {
    case 'scan': {
      const { columns } = item.relation;
      return byName(
        aliasRenamed(
          item.node,
          columns.map((c) => c.name),
        ),
        (i) => namedType(columns[i]?.type ?? ''),
      );
    }
    case 'subquery':
      return byName(aliasRenamed(item.node, outputNames(item.query)), (i) => outputTypes(item.query)[i]);
    case 'constant':
    case 'join':
      return undefined;
    default: {
      const exhaustive: never = item;
      return exhaustive;
    }
  }
}

/** A name given to two columns is ambiguous: PostgreSQL refuses to resolve it. */
function byName(names: string[], type: (position: number) => SqlType | undefined): Columns {
  const positions = new Map<string, number[]>();
  for (const [i, n] of names.entries()) positions.set(n, [...(positions.get(n) ?? []), i]);
  return new Map(
    [...positions].map(([n, [first, ...others]]) => [
      n,
      () => (first !== undefined && others.length === 0 ? type(first) : undefined),
    ]),
  );
}

// Each reference to a subquery column asks for the subquery's types; nested subqueries would
// repeat the work for every reference above them. Operator trees are never mutated.
const outputTypesOf = new WeakMap<QueryOp, (SqlType | undefined)[]>();

function outputTypes(op: QueryOp): (SqlType | undefined)[] {
  let types = outputTypesOf.get(op);
  if (!types) {
    types = inferOutputTypes(op);
    outputTypesOf.set(op, types);
  }
  return types;
}

function inferOutputTypes(op: QueryOp): (SqlType | undefined)[] {
  switch (op.kind) {
    case 'select':
    case 'aggregate':
    case 'window':
      return (op.stmt.targetList ?? []).map((t) =>
        'ResTarget' in t && t.ResTarget.val ? expressionType(t.ResTarget.val, op.from) : undefined,
      );
    case 'distinct':
      return outputTypes(op.input);
    case 'unionAll': {
      const inputs = op.inputs.map(outputTypes);
      return (inputs[0] ?? []).map((_, i) => unionType(inputs.map((types) => types[i])));
    }
    default: {
      const exhaustive: never = op;
      return exhaustive;
    }
  }
}

/** UNION resolves each column like CASE; other types are known only when every input agrees. */
function unionType(types: (SqlType | undefined)[]): SqlType | undefined {
  const first = types[0];
  if (first?.kind === 'other')
    return types.every((t) => t?.kind === 'other' && t.name === first.name) ? first : undefined;
  return widest(types);
}
