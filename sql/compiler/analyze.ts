// Reads a defining query (as pg_get_viewdef prints it) into an operator tree. Views and CTEs are
// inlined as subqueries; anything the delta rules cannot handle is refused here by name.
import { deparse, type Node, parseStatements, type SelectStmt, selectOf, stringValue, walk } from './ast.js';
import { UnsupportedConstruct } from './errors.js';
import { type CompileFacts, type RelationFacts, relationKey } from './facts.js';
import { unnest } from './unnest.js';

/** A relation in FROM. Aliases are kept: every expression of the query refers to them. */
export type FromItem =
  | { kind: 'scan'; alias: string; relation: RelationFacts; node: Node }
  | { kind: 'join'; type: JoinType; left: FromItem; right: FromItem; node: Node }
  | { kind: 'subquery'; alias: string; query: QueryOp; node: Node }
  | { kind: 'constant'; node: Node };

/** Which sides of a join keep their unmatched rows (null-extending the other side). */
export type JoinType = 'inner' | 'left' | 'right' | 'full';

const JOIN_TYPES: Record<string, JoinType> = {
  JOIN_INNER: 'inner',
  JOIN_LEFT: 'left',
  JOIN_RIGHT: 'right',
  JOIN_FULL: 'full',
};

/**
 * A query block. `select` is projection and filter over its FROM items (they stay together
 * because the target list and WHERE refer to FROM aliases); `window` is such a block whose
 * targets hold window functions, all over one PARTITION BY list; the others are the non-linear
 * and set operators on top.
 */
export type QueryOp =
  | { kind: 'select'; stmt: SelectStmt; from: FromItem[] }
  | { kind: 'aggregate'; stmt: SelectStmt; from: FromItem[]; groupBy: Node[] }
  | { kind: 'window'; stmt: SelectStmt; from: FromItem[]; partitionBy: Node[] }
  | { kind: 'distinct'; input: QueryOp; inputStmt: SelectStmt }
  | { kind: 'unionAll'; inputs: QueryOp[] };

// Values that change between refreshes although no source changed.
const TIME_DEPENDENT = new Set([
  'now',
  'statement_timestamp',
  'transaction_timestamp',
  'clock_timestamp',
  'timeofday',
]);

interface Scope {
  facts: CompileFacts;
  relations: Map<string, RelationFacts>;
  ctes: Map<string, SelectStmt>;
  counter: { next: number };
}

export function analyze(facts: CompileFacts): QueryOp {
  const stmts = parseStatements(facts.definingQuery);
  const stmt = stmts.length === 1 ? selectOf(stmts[0]) : undefined;
  if (!stmt) throw new UnsupportedConstruct('anything but a single SELECT');
  const relations = new Map(facts.relations.map((r) => [relationKey(r.schema, r.name), r]));
  // ORDER BY without LIMIT does not change which rows a stream table holds.
  const { sortClause: _ignored, ...unordered } = stmt;
  return query(unordered, { facts, relations, ctes: new Map(), counter: { next: 0 } });
}

function query(original: SelectStmt, outer: Scope): QueryOp {
  const scope = withCtes(original, outer);
  if (original.op && original.op !== 'SETOP_NONE') return setOperation(original, scope);
  const stmt = unnest(original, scope);
  checkClauses(stmt, scope);
  const from = (stmt.fromClause ?? []).map((item) => fromItem(item, scope));
  if (stmt.distinctClause) {
    if (stmt.distinctClause.some((d) => Object.keys(d).length > 0))
      throw new UnsupportedConstruct('DISTINCT ON');
    const { distinctClause: _d, ...plain } = stmt;
    return { kind: 'distinct', input: selectBlock(plain, from, scope), inputStmt: plain };
  }
  return selectBlock(stmt, from, scope);
}

function selectBlock(stmt: SelectStmt, from: FromItem[], scope: Scope): QueryOp {
  const groupBy = stmt.groupClause ?? [];
  const grouped = groupBy.length > 0 || stmt.havingClause || hasAggregate(stmt.targetList, scope);
  const windows = windowsOf(stmt.targetList);
  if (windows.length > 0) {
    if (grouped)
      throw new UnsupportedConstruct(
        'window functions over a grouped query',
        'Group in a subquery in FROM and compute the window functions over it.',
      );
    return { kind: 'window', stmt, from, partitionBy: partitionOf(windows) };
  }
  if (grouped) return { kind: 'aggregate', stmt, from, groupBy };
  return { kind: 'select', stmt, from };
}

interface WindowDef {
  partitionClause?: Node[];
}

function windowsOf(targets: Node[] | undefined): WindowDef[] {
  const found: WindowDef[] = [];
  for (const { node } of walk(targets)) {
    const over = (node.FuncCall as { over?: WindowDef } | undefined)?.over;
    if (over) found.push(over);
  }
  return found;
}

// A window function's rows are those of its partition, so the partitions a change touches are
// recomputed whole (delta/grouped.ts). That needs one partition list for every window function
// of the block, and one at all: without PARTITION BY every row depends on all the others.
function partitionOf(windows: WindowDef[]): Node[] {
  const lists = new Set(windows.map((w) => deparse(w.partitionClause ?? [])));
  if (lists.size > 1) throw new UnsupportedConstruct('window functions with different PARTITION BY lists');
  const partitionBy = windows[0]?.partitionClause ?? [];
  if (partitionBy.length === 0)
    throw new UnsupportedConstruct(
      'window functions without PARTITION BY',
      'Each row then depends on every other row of the result; FULL mode recomputes it.',
    );
  return partitionBy;
}

function setOperation(stmt: SelectStmt, scope: Scope): QueryOp {
  if (stmt.op !== 'SETOP_UNION')
    throw new UnsupportedConstruct(stmt.op === 'SETOP_INTERSECT' ? 'INTERSECT' : 'EXCEPT');
  if (stmt.limitCount || stmt.limitOffset) throw new UnsupportedConstruct('LIMIT or OFFSET');
  const inputs = [stmt.larg, stmt.rarg].flatMap((side) => {
    if (!side) return [];
    const op = query(side, scope);
    return op.kind === 'unionAll' && stmt.all ? op.inputs : [op];
  });
  const union: QueryOp = { kind: 'unionAll', inputs };
  return stmt.all ? union : { kind: 'distinct', input: union, inputStmt: { ...stmt, all: true } };
}

function withCtes(stmt: SelectStmt, outer: Scope): Scope {
  const ctes = stmt.withClause?.ctes ?? [];
  if (ctes.length === 0) return outer;
  if (stmt.withClause?.recursive) throw new UnsupportedConstruct('WITH RECURSIVE');
  const inner = new Map(outer.ctes);
  for (const cte of ctes) {
    if (!('CommonTableExpr' in cte)) continue;
    const body = selectOf(cte.CommonTableExpr.ctequery);
    const name = cte.CommonTableExpr.ctename;
    if (!body || !name) throw new UnsupportedConstruct('a data-modifying WITH query');
    if (cte.CommonTableExpr.aliascolnames?.length)
      throw new UnsupportedConstruct('column names on a WITH query');
    inner.set(name, body);
  }
  return { ...outer, ctes: inner };
}

function checkClauses(stmt: SelectStmt, scope: Scope): void {
  if (stmt.limitCount || stmt.limitOffset) throw new UnsupportedConstruct('LIMIT or OFFSET');
  if (stmt.lockingClause?.length) throw new UnsupportedConstruct('FOR UPDATE/SHARE');
  if (stmt.windowClause?.length)
    throw new UnsupportedConstruct('a WINDOW clause', 'Write each window definition inside its OVER (…).');
  if (stmt.valuesLists?.length) return;
  for (const group of stmt.groupClause ?? []) {
    if ('GroupingSet' in group) throw new UnsupportedConstruct('GROUPING SETS, ROLLUP or CUBE');
  }
  const expressions = [stmt.targetList, stmt.whereClause, stmt.havingClause, stmt.groupClause];
  for (const { node } of walk(expressions)) {
    if ('SubLink' in node) throw new UnsupportedConstruct('subqueries in expressions (EXISTS, IN, scalar)');
    if ('SQLValueFunction' in node)
      throw new UnsupportedConstruct('time-dependent values such as CURRENT_TIMESTAMP');
    const call = node.FuncCall as { funcname?: Node[]; over?: unknown } | undefined;
    if (!call) continue;
    const name = functionName(call.funcname);
    if (TIME_DEPENDENT.has(name)) throw new UnsupportedConstruct(`time-dependent function ${name}()`);
    if (scope.facts.volatileNames.has(name)) throw new UnsupportedConstruct(`volatile function ${name}()`);
  }
}

function fromItem(item: Node, scope: Scope): FromItem {
  if ('RangeVar' in item) return rangeVar(item, scope);
  if ('JoinExpr' in item) {
    const join = item.JoinExpr;
    const type = JOIN_TYPES[join.jointype ?? ''];
    if (!type) throw new UnsupportedConstruct(`${(join.jointype ?? 'JOIN_').slice(5)} JOIN`);
    // A USING or NATURAL outer join merges its key columns into unqualified names whose value
    // depends on which side matched; the antijoin rule rebinds each side by its alias instead.
    if (type !== 'inner' && (join.usingClause?.length || join.isNatural)) {
      throw new UnsupportedConstruct(
        `USING or NATURAL in a ${type.toUpperCase()} OUTER JOIN`,
        'Write the join condition with ON.',
      );
    }
    if (join.alias) throw new UnsupportedConstruct('an alias on a JOIN');
    if (!join.larg || !join.rarg) throw new UnsupportedConstruct('a JOIN without two sides');
    for (const { node } of walk(join.quals)) {
      if ('SubLink' in node) throw new UnsupportedConstruct('subqueries in expressions (EXISTS, IN, scalar)');
    }
    return {
      kind: 'join',
      type,
      left: fromItem(join.larg, scope),
      right: fromItem(join.rarg, scope),
      node: item,
    };
  }
  if ('RangeSubselect' in item) {
    const sub = item.RangeSubselect;
    if (sub.lateral) throw new UnsupportedConstruct('LATERAL');
    const body = selectOf(sub.subquery);
    const alias = sub.alias?.aliasname;
    if (!body || !alias) throw new UnsupportedConstruct('a subquery in FROM without an alias');
    const op = query(body, scope);
    const node: Node = { RangeSubselect: { ...sub, subquery: { SelectStmt: withOuterCtes(body, scope) } } };
    return readsNothing(op) ? { kind: 'constant', node } : { kind: 'subquery', alias, query: op, node };
  }
  if ('RangeFunction' in item) {
    if (item.RangeFunction.lateral) throw new UnsupportedConstruct('LATERAL');
    return { kind: 'constant', node: item };
  }
  throw new UnsupportedConstruct(`${Object.keys(item)[0] ?? 'this item'} in FROM`);
}

function rangeVar(item: Node & { RangeVar: object }, scope: Scope): FromItem {
  const rv = (
    item as {
      RangeVar: { schemaname?: string; relname?: string; alias?: { aliasname?: string; colnames?: Node[] } };
    }
  ).RangeVar;
  const name = rv.relname ?? '';
  const alias = rv.alias?.aliasname ?? name;
  // Column aliases (FROM c AS x(a, b)) rename the subquery's columns by position, as the table's.
  const subqueryAlias = { ...rv.alias, aliasname: alias };
  const cte = rv.schemaname ? undefined : scope.ctes.get(name);
  if (cte) {
    const node: Node = {
      RangeSubselect: { subquery: { SelectStmt: withOuterCtes(cte, scope) }, alias: subqueryAlias },
    };
    return { kind: 'subquery', alias, query: query(cte, scope), node };
  }
  const relation = scope.relations.get(relationKey(rv.schemaname ?? '', name));
  if (!relation)
    throw new UnsupportedConstruct(`relation ${rv.schemaname ?? ''}.${name}, which is not among the sources`);
  switch (relation.kind) {
    case 'table':
    case 'stream_table': {
      const missing = relation.columns.find((c) => !c.captured);
      if (!relation.buffer || missing) {
        throw new UnsupportedConstruct(
          `${relation.schema}.${relation.name} without change capture of every column`,
          'A reinitialization re-installs change capture.',
        );
      }
      // The delta reads a table's changes, its key and the columns the query names by their
      // own names; renamed by position they would be none of those.
      if (rv.alias?.colnames?.length)
        throw new UnsupportedConstruct(
          `column aliases on table ${relation.schema}.${relation.name}`,
          'Rename the columns in the select list, or in a subquery: FROM (SELECT id AS x FROM t) a.',
        );
      return { kind: 'scan', alias, relation, node: item };
    }
    case 'view': {
      const [viewStmt] = parseStatements(relation.viewDefinition ?? '');
      const body = selectOf(viewStmt);
      if (!body)
        throw new UnsupportedConstruct(
          `view ${relation.schema}.${relation.name} without a readable definition`,
        );
      const node: Node = { RangeSubselect: { subquery: { SelectStmt: body }, alias: subqueryAlias } };
      return { kind: 'subquery', alias, query: query(body, scope), node };
    }
    case 'matview':
      throw new UnsupportedConstruct(`materialized view ${relation.schema}.${relation.name}`);
    case 'foreign_table':
      throw new UnsupportedConstruct(`foreign table ${relation.schema}.${relation.name}`);
    default: {
      const exhaustive: never = relation.kind;
      throw new UnsupportedConstruct(String(exhaustive));
    }
  }
}

/**
 * A subquery that names WITH queries of an enclosing block, made to carry their definitions: the
 * delta statement uses it away from the defining query's own WITH clause.
 */
function withOuterCtes(body: SelectStmt, scope: Scope): SelectStmt {
  const own = new Set(
    (body.withClause?.ctes ?? []).map((c) => ('CommonTableExpr' in c ? c.CommonTableExpr.ctename : '')),
  );
  const outer = [...scope.ctes].filter(([name]) => !own.has(name));
  const named = new Set<string>();
  for (const { node } of walk(body)) {
    const rv = node.RangeVar as { schemaname?: string; relname?: string } | undefined;
    if (rv && !rv.schemaname && rv.relname) named.add(rv.relname);
  }
  if (!outer.some(([name]) => named.has(name))) return body;
  const ctes: Node[] = outer.map(([ctename, query]) => ({
    CommonTableExpr: { ctename, ctequery: { SelectStmt: query } },
  }));
  return { ...body, withClause: { ctes: [...ctes, ...(body.withClause?.ctes ?? [])] } };
}

export function functionName(funcname: Node[] | undefined): string {
  return stringValue(funcname?.at(-1)) ?? '';
}

export function isAggregateCall(node: Record<string, unknown>, aggregateNames: ReadonlySet<string>): boolean {
  const call = node.FuncCall as { funcname?: Node[]; over?: unknown } | undefined;
  return call !== undefined && !call.over && aggregateNames.has(functionName(call.funcname));
}

function hasAggregate(targets: Node[] | undefined, scope: Scope): boolean {
  for (const { node } of walk(targets)) {
    if (isAggregateCall(node, scope.facts.aggregateNames)) return true;
  }
  return false;
}

export function readsNothing(op: QueryOp): boolean {
  switch (op.kind) {
    case 'select':
    case 'aggregate':
    case 'window':
      return op.from.every(fromReadsNothing);
    case 'distinct':
      return readsNothing(op.input);
    case 'unionAll':
      return op.inputs.every(readsNothing);
    default: {
      const exhaustive: never = op;
      return exhaustive;
    }
  }
}

function fromReadsNothing(item: FromItem): boolean {
  switch (item.kind) {
    case 'scan':
      return false;
    case 'constant':
      return true;
    case 'join':
      return fromReadsNothing(item.left) && fromReadsNothing(item.right);
    case 'subquery':
      return readsNothing(item.query);
    default: {
      const exhaustive: never = item;
      return exhaustive;
    }
  }
}
