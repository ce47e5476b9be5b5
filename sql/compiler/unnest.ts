// Subqueries in WHERE and HAVING rewritten into FROM items that have delta rules. EXISTS and IN
// join the distinct correlation keys (a semi-join); NOT EXISTS and a NULL-free NOT IN left-join
// them and keep the rows nothing matched (an anti-join); a scalar aggregate joins its value,
// grouped by the correlation keys when it has any. Each rewrite is exact under SQL's
// three-valued logic and multiset semantics; a subquery where it would not be is refused by name.
import {
  and,
  clone,
  conjuncts,
  deparse,
  expr,
  type Node,
  resTarget,
  type SelectStmt,
  selectOf,
  stringValue,
  walk,
} from './ast.js';
import { UnsupportedConstruct } from './errors.js';
import { type CompileFacts, type RelationFacts, relationKey } from './facts.js';

export interface UnnestScope {
  facts: CompileFacts;
  relations: Map<string, RelationFacts>;
  /** Numbers the FROM items the rewrites add, __pgt_sq<n>, unique within one defining query. */
  counter: { next: number };
}

type SubLinkNode = Extract<Node, { SubLink: unknown }>['SubLink'];

/** A subquery whose correlation conjuncts (outer = inner) were taken out of its WHERE. */
interface Decorrelated {
  stmt: SelectStmt;
  outer: Node[];
  inner: Node[];
  /** At most one correlation conjunct `inner op outer` with op <, <=, >, >= or <>. */
  theta?: { op: string; inner: Node; outer: Node };
}

// The operator with its operands swapped: outer < inner is inner > outer.
const FLIPPED: Record<string, string> = { '<': '>', '>': '<', '<=': '>=', '>=': '<=', '<>': '<>' };

const NOT_EQUALITY =
  'a correlated subquery whose correlation is not an equality of an outer and an inner expression';

const COMPARISONS = new Set(['=', '<>', '<', '>', '<=', '>=']);
// Aggregates whose value on no rows is NULL, as a scalar subquery's is when nothing correlates.
const NULL_ON_EMPTY = new Set(['sum', 'avg', 'min', 'max']);

const SUBQUERIES = 'subqueries in expressions (EXISTS, IN, scalar)';

export function unnest(stmt: SelectStmt, scope: UnnestScope): SelectStmt {
  if (!hasSubLink([stmt.whereClause, stmt.havingClause])) return stmt;
  const from = [...(stmt.fromClause ?? [])];
  const conditions: Node[] = [];
  const groupBy = [...(stmt.groupClause ?? [])];
  const alias = () => `__pgt_sq${scope.counter.next++}`;

  /** A one-row aggregate joined to every row: the value of an uncorrelated scalar subquery. */
  const scalar = (link: SubLinkNode): Node => {
    const sub = globalAggregate(link, scope);
    const name = alias();
    from.push(derived({ ...sub, targetList: [resTarget(targetValue(sub), '__pgt_v')] }, name));
    return column(name, '__pgt_v');
  };

  for (const conjunct of conjuncts(stmt.whereClause)) {
    if (!hasSubLink(conjunct)) {
      conditions.push(conjunct);
      continue;
    }
    const negated = notOf(conjunct);
    const link = subLinkOf(negated ?? conjunct);
    if (link && (link.subLinkType === 'EXISTS_SUBLINK' || isIn(link))) {
      if (negated && link.subLinkType !== 'EXISTS_SUBLINK') checkNotIn(link, stmt, scope);
      const keyed = link.subLinkType === 'EXISTS_SUBLINK' ? existsKeys(link, scope) : inKeys(link, scope);
      const name = alias();
      const sub = distinctKeys(keyed, name);
      const on = and(keyed.outer.map((o, i) => equals(o, column(name, key(i))))) as Node;
      const some = keyed.theta && someDiffers(keyed.theta, name);
      if (!negated) {
        from.push(sub);
        conditions.push(on, ...(some ? [expr(some)] : []));
        continue;
      }
      // The keys are never NULL in the subquery, so a NULL key column means nothing matched.
      const at = itemReferencing(from, keyed.outer);
      from[at] = { JoinExpr: { jointype: 'JOIN_LEFT', larg: from[at], rarg: sub, quals: on } };
      const unmatched = `${name}.${key(0)} IS NULL`;
      // An unknown comparison (a NULL outer value) is no match, so NOT EXISTS holds.
      conditions.push(expr(some ? `${unmatched} OR NOT coalesce(${some}, false)` : unmatched));
      continue;
    }
    const correlatedAt = correlatedComparison(conjunct);
    conditions.push(
      mapSubLinks(conjunct, (l) => {
        if (l.subLinkType !== 'EXPR_SUBLINK') throw new UnsupportedConstruct(sublinkName(l));
        if (l !== correlatedAt) return scalar(l);
        const sub = equalities(decorrelate(globalAggregate(l, scope)));
        if (!nullOnEmpty(targetValue(sub.stmt), scope.facts)) {
          throw new UnsupportedConstruct(
            'a correlated scalar subquery whose value on no rows is not NULL (COUNT, coalesce, CASE)',
          );
        }
        // Where nothing correlates the value is NULL and the strict comparison filters the row
        // out, exactly as the inner join does.
        const name = alias();
        const grouped = distinctKeys(sub, name, targetValue(sub.stmt));
        from.push(grouped);
        conditions.push(...sub.outer.map((o, i) => equals(o, column(name, key(i)))));
        return column(name, '__pgt_v');
      }),
    );
  }

  let having = stmt.havingClause;
  if (having && hasSubLink(having)) {
    having = mapSubLinks(having, (l) => {
      if (l.subLinkType !== 'EXPR_SUBLINK') throw new UnsupportedConstruct(`${sublinkName(l)} in HAVING`);
      // Grouping by a one-row value keeps the groups; without GROUP BY it would keep a row
      // that an empty input gives the aggregate.
      if (groupBy.length === 0)
        throw new UnsupportedConstruct('a scalar subquery in HAVING without GROUP BY');
      const value = scalar(l);
      groupBy.push(value);
      return value;
    });
  }
  return {
    ...stmt,
    fromClause: from,
    whereClause: and(conditions),
    ...(having ? { havingClause: having } : {}),
    ...(groupBy.length > 0 ? { groupClause: groupBy } : {}),
  };
}

const key = (i: number) => `__pgt_k${i}`;

function existsKeys(link: SubLinkNode, scope: UnnestScope): Decorrelated {
  const stmt = plainSubquery(link, 'EXISTS', scope);
  const sub = decorrelate(stmt);
  if (sub.outer.length === 0) {
    throw new UnsupportedConstruct(
      sub.theta
        ? 'an EXISTS correlated by an inequality alone, without an equality'
        : 'an uncorrelated EXISTS',
    );
  }
  return sub;
}

function inKeys(link: SubLinkNode, scope: UnnestScope): Decorrelated {
  const test = link.testexpr;
  if (!test || 'RowExpr' in test) throw new UnsupportedConstruct('a row value IN a subquery');
  const stmt = selectOf(link.subselect);
  if (stmt?.targetList?.length !== 1)
    throw new UnsupportedConstruct('an IN subquery of more than one column');
  const plain = isPlain(stmt, scope);
  // A grouped, DISTINCT or set-operation subquery is kept whole under a projection of its column.
  const body: SelectStmt = plain
    ? stmt
    : {
        targetList: [resTarget(column('__pgt_in', 'v'), 'v')],
        fromClause: [
          {
            RangeSubselect: {
              subquery: { SelectStmt: stmt },
              alias: { aliasname: '__pgt_in', colnames: [{ String: { sval: 'v' } }] },
            },
          },
        ],
        limitOption: 'LIMIT_OPTION_DEFAULT',
        op: 'SETOP_NONE',
      };
  const sub = equalities(decorrelate(body));
  const value = targetValue(body);
  return { stmt: sub.stmt, outer: [test, ...sub.outer], inner: [value, ...sub.inner] };
}

/** NOT IN equals NOT EXISTS only when neither side can be NULL (x NOT IN (NULL) is never true). */
function checkNotIn(link: SubLinkNode, outerStmt: SelectStmt, scope: UnnestScope): void {
  const test = link.testexpr as Node;
  const stmt = selectOf(link.subselect) as SelectStmt;
  if (!notNull(test, outerStmt, scope) || !isPlain(stmt, scope) || !notNull(targetValue(stmt), stmt, scope)) {
    throw new UnsupportedConstruct(
      'NOT IN with a subquery or test value that may be NULL',
      'Write NOT EXISTS, or make both columns primary key columns or filter them IS NOT NULL.',
    );
  }
}

/**
 * SELECT inner keys [, value] FROM … WHERE … AND every key IS NOT NULL GROUP BY the keys: one row
 * per key, so joining it never duplicates an outer row; a NULL key never equals an outer value.
 */
function distinctKeys(sub: Decorrelated, name: string, value?: Node): Node {
  const { inner: keys, theta } = sub;
  const { withClause, sortClause: _s, distinctClause: _d, ...block } = sub.stmt;
  const body: SelectStmt = {
    ...block,
    ...(withClause ? { withClause } : {}),
    targetList: [
      ...keys.map((k, i) => resTarget(clone(k), key(i))),
      ...(value ? [resTarget(clone(value), '__pgt_v')] : []),
      ...(theta
        ? [resTarget(call('min', theta.inner), '__pgt_lo'), resTarget(call('max', theta.inner), '__pgt_hi')]
        : []),
    ],
    whereClause: and([
      block.whereClause,
      ...[...keys, ...(theta ? [theta.inner] : [])].map(
        (k): Node => ({ NullTest: { arg: clone(k), nulltesttype: 'IS_NOT_NULL' } }),
      ),
    ]),
    groupClause: keys.map((k) => clone(k)),
  };
  return derived(body, name);
}

/**
 * Whether some row of the group satisfies inner op outer, from the group's extremes of inner
 * (its NULLs satisfy nothing and are filtered out): some value differs from x when the least or
 * the greatest does; some value is below x when the least is, above x when the greatest is.
 */
function someDiffers(theta: NonNullable<Decorrelated['theta']>, name: string): string {
  const x = `(${deparse(theta.outer)})`;
  const lo = `${name}.__pgt_lo`;
  const hi = `${name}.__pgt_hi`;
  switch (theta.op) {
    case '<>':
      return `(${lo} <> ${x} OR ${hi} <> ${x})`;
    case '<':
    case '<=':
      return `${lo} ${theta.op} ${x}`;
    case '>':
    case '>=':
      return `${hi} ${theta.op} ${x}`;
    default:
      throw new UnsupportedConstruct(NOT_EQUALITY);
  }
}

/** Only EXISTS and NOT EXISTS test for some row; IN and scalar subqueries need equal keys. */
function equalities(sub: Decorrelated): Decorrelated {
  if (sub.theta) throw new UnsupportedConstruct(NOT_EQUALITY);
  return sub;
}

function call(name: string, arg: Node): Node {
  return {
    FuncCall: {
      funcname: [{ String: { sval: name } }],
      args: [clone(arg)],
      funcformat: 'COERCE_EXPLICIT_CALL',
    },
  };
}

function derived(body: SelectStmt, name: string): Node {
  return { RangeSubselect: { subquery: { SelectStmt: body }, alias: { aliasname: name } } };
}

/** Takes the conjuncts outer = inner out of the subquery's WHERE; any other outer reference is refused. */
function decorrelate(stmt: SelectStmt): Decorrelated {
  const own = aliasesIn(stmt);
  const refs = (node: unknown) => {
    let inner = 0;
    let outer = 0;
    for (const { node: n } of walk(node)) {
      const ref = columnRef(n);
      if (!ref) continue;
      if (ref.length < 2)
        throw new UnsupportedConstruct('an unqualified column in a subquery', 'Qualify it by its relation.');
      if (own.has(ref[0] ?? '')) inner++;
      else outer++;
    }
    return { inner, outer };
  };
  const outer: Node[] = [];
  const inner: Node[] = [];
  const kept: Node[] = [];
  let theta: Decorrelated['theta'];
  const isSetOp = stmt.op !== undefined && stmt.op !== 'SETOP_NONE';
  for (const conjunct of isSetOp ? [] : conjuncts(stmt.whereClause)) {
    const counts = refs(conjunct);
    if (counts.outer === 0) {
      kept.push(conjunct);
      continue;
    }
    const cmp = 'A_Expr' in conjunct ? conjunct.A_Expr : undefined;
    const op = cmp?.kind === 'AEXPR_OP' ? operator(cmp.name) : '';
    const [l, r] = COMPARISONS.has(op)
      ? [cmp?.lexpr, cmp?.rexpr].map((s) => (s && !hasSubLink(s) ? refs(s) : undefined))
      : [];
    const pair =
      cmp?.lexpr && cmp.rexpr && l && r
        ? l.inner + r.outer === 0 && r.inner > 0
          ? { outer: cmp.lexpr, inner: cmp.rexpr, op: FLIPPED[op] ?? op }
          : r.inner + l.outer === 0 && l.inner > 0
            ? { outer: cmp.rexpr, inner: cmp.lexpr, op }
            : undefined
        : undefined;
    if (!pair) throw new UnsupportedConstruct(NOT_EQUALITY);
    if (pair.op === '=') {
      outer.push(pair.outer);
      inner.push(pair.inner);
    } else if (theta) {
      throw new UnsupportedConstruct(
        'a correlated subquery with more than one inequality between outer and inner',
      );
    } else {
      theta = pair;
    }
  }
  const rest: SelectStmt = isSetOp ? stmt : { ...stmt, whereClause: and(kept) };
  if (refs({ ...rest, whereClause: undefined }).outer > 0 || refs(rest.whereClause).outer > 0) {
    throw new UnsupportedConstruct('a correlated subquery with outer references outside its WHERE');
  }
  return { stmt: rest, outer, inner, ...(theta ? { theta } : {}) };
}

/** A subquery of EXISTS or IN that is a plain filter over its FROM: no grouping, DISTINCT, set operation or LIMIT. */
function plainSubquery(link: SubLinkNode, what: string, scope: UnnestScope): SelectStmt {
  const stmt = selectOf(link.subselect);
  if (!stmt || !isPlain(stmt, scope)) {
    throw new UnsupportedConstruct(`${what} over a grouped, DISTINCT, set-operation or LIMIT subquery`);
  }
  return stmt;
}

function isPlain(stmt: SelectStmt, scope: UnnestScope): boolean {
  return (
    (stmt.op === undefined || stmt.op === 'SETOP_NONE') &&
    !stmt.groupClause?.length &&
    !stmt.havingClause &&
    !stmt.distinctClause &&
    !stmt.limitCount &&
    !stmt.limitOffset &&
    !hasAggregate(stmt.targetList, scope.facts)
  );
}

/** An aggregate without GROUP BY returns exactly one row, as a scalar subquery must. */
function globalAggregate(link: SubLinkNode, scope: UnnestScope): SelectStmt {
  const stmt = selectOf(link.subselect);
  if (
    !stmt ||
    (stmt.op !== undefined && stmt.op !== 'SETOP_NONE') ||
    stmt.targetList?.length !== 1 ||
    stmt.groupClause?.length ||
    stmt.havingClause ||
    stmt.distinctClause ||
    stmt.limitCount ||
    stmt.limitOffset ||
    !hasAggregate(stmt.targetList, scope.facts)
  ) {
    throw new UnsupportedConstruct(
      'a scalar subquery that is not one aggregate without GROUP BY',
      'It could return no row or more than one; FULL evaluates it as PostgreSQL does.',
    );
  }
  return stmt;
}

/** The scalar subquery a conjunct compares directly (x < (SELECT …)), when it is correlated. */
function correlatedComparison(conjunct: Node): SubLinkNode | undefined {
  const cmp = 'A_Expr' in conjunct ? conjunct.A_Expr : undefined;
  const direct =
    cmp?.kind === 'AEXPR_OP' && COMPARISONS.has(operator(cmp.name))
      ? [cmp.lexpr, cmp.rexpr].map((s) => (s ? subLinkOf(s) : undefined))
      : [];
  for (const { node } of walk(conjunct)) {
    const link = (node as { SubLink?: SubLinkNode }).SubLink;
    if (link?.subLinkType !== 'EXPR_SUBLINK' || !isCorrelated(link)) continue;
    if (!direct.includes(link)) {
      throw new UnsupportedConstruct(
        'a correlated scalar subquery that is not an operand of a comparison in WHERE',
      );
    }
    return link;
  }
  return undefined;
}

function isCorrelated(link: SubLinkNode): boolean {
  const stmt = selectOf(link.subselect);
  if (!stmt) return false;
  const own = aliasesIn(stmt);
  for (const { node } of walk(stmt)) {
    const ref = columnRef(node);
    if (ref && ref.length >= 2 && !own.has(ref[0] ?? '')) return true;
  }
  return false;
}

function nullOnEmpty(value: Node, facts: CompileFacts): boolean {
  if ('A_Const' in value) return true;
  if ('TypeCast' in value) return value.TypeCast.arg ? nullOnEmpty(value.TypeCast.arg, facts) : false;
  if ('A_Expr' in value) {
    const e = value.A_Expr;
    // Operators are strict: NULL in, NULL out; one NULL operand is enough.
    return (
      e.kind === 'AEXPR_OP' && [e.lexpr, e.rexpr].some((s) => s && !('A_Const' in s) && nullOnEmpty(s, facts))
    );
  }
  if ('FuncCall' in value) {
    const name = stringValue(value.FuncCall.funcname?.at(-1)) ?? '';
    return NULL_ON_EMPTY.has(name) && facts.aggregateNames.has(name) && !value.FuncCall.over;
  }
  return false;
}

/** Whether a value is provably never NULL in the block: a primary key column of an inner relation, or filtered IS NOT NULL. */
function notNull(value: Node, stmt: SelectStmt, scope: UnnestScope): boolean {
  const text = deparse(value);
  for (const c of conjuncts(stmt.whereClause)) {
    if (
      'NullTest' in c &&
      c.NullTest.nulltesttype === 'IS_NOT_NULL' &&
      c.NullTest.arg &&
      deparse(c.NullTest.arg) === text
    )
      return true;
  }
  const ref = columnRef(value);
  if (ref?.length !== 2) return false;
  const [alias, name] = ref;
  const visit = (item: Node): boolean => {
    if ('RangeVar' in item) {
      const rv = item.RangeVar;
      if ((rv.alias?.aliasname ?? rv.relname) !== alias) return false;
      const relation = scope.relations.get(relationKey(rv.schemaname ?? '', rv.relname ?? ''));
      return relation?.key?.includes(name ?? '') ?? false;
    }
    if ('JoinExpr' in item) {
      const j = item.JoinExpr;
      const left = j.jointype === 'JOIN_INNER' || j.jointype === 'JOIN_LEFT';
      const right = j.jointype === 'JOIN_INNER' || j.jointype === 'JOIN_RIGHT';
      return (left && !!j.larg && visit(j.larg)) || (right && !!j.rarg && visit(j.rarg));
    }
    return false;
  };
  return (stmt.fromClause ?? []).some(visit);
}

/** The index of the FROM item that every outer key refers to, for an anti-join to wrap. */
function itemReferencing(from: Node[], outer: Node[]): number {
  const aliases = new Set<string>();
  for (const { node } of walk(outer)) {
    const ref = columnRef(node);
    if (ref && ref.length >= 2) aliases.add(ref[0] ?? '');
  }
  const at = from.findIndex((item) => {
    const own = aliasesIn(item);
    return [...aliases].every((a) => own.has(a));
  });
  if (at < 0 || aliases.size === 0) {
    throw new UnsupportedConstruct('NOT EXISTS or NOT IN correlated with more than one relation of FROM');
  }
  return at;
}

function aliasesIn(node: unknown): Set<string> {
  const names = new Set<string>();
  for (const { node: n } of walk(node)) {
    const rv = (n as { RangeVar?: { relname?: string; alias?: { aliasname?: string } } }).RangeVar;
    if (rv) names.add(rv.alias?.aliasname ?? rv.relname ?? '');
    const sub = (n as { RangeSubselect?: { alias?: { aliasname?: string } } }).RangeSubselect;
    if (sub?.alias?.aliasname) names.add(sub.alias.aliasname);
    const fn = (n as { RangeFunction?: { alias?: { aliasname?: string } } }).RangeFunction;
    if (fn?.alias?.aliasname) names.add(fn.alias.aliasname);
  }
  return names;
}

function columnRef(node: unknown): (string | undefined)[] | undefined {
  const ref = (node as { ColumnRef?: { fields?: Node[] } }).ColumnRef;
  if (!ref) return undefined;
  if (ref.fields?.some((f) => 'A_Star' in f)) return undefined;
  return (ref.fields ?? []).map((f) => stringValue(f));
}

function notOf(node: Node): Node | undefined {
  return 'BoolExpr' in node && node.BoolExpr.boolop === 'NOT_EXPR' && node.BoolExpr.args?.length === 1
    ? node.BoolExpr.args[0]
    : undefined;
}

function subLinkOf(node: Node): SubLinkNode | undefined {
  return 'SubLink' in node ? node.SubLink : undefined;
}

function isIn(link: SubLinkNode): boolean {
  return link.subLinkType === 'ANY_SUBLINK' && (!link.operName?.length || operator(link.operName) === '=');
}

function operator(name: Node[] | undefined): string {
  return name?.length === 1 ? (stringValue(name[0]) ?? '') : '';
}

function sublinkName(link: SubLinkNode): string {
  switch (link.subLinkType) {
    case 'EXISTS_SUBLINK':
      return 'EXISTS inside another expression (under OR, CASE, …)';
    case 'ANY_SUBLINK':
      return 'IN or ANY with a subquery inside another expression, or with an operator other than =';
    case 'ALL_SUBLINK':
      return 'ALL with a subquery';
    case 'ARRAY_SUBLINK':
      return 'ARRAY(subquery)';
    default:
      return SUBQUERIES;
  }
}

function hasSubLink(node: unknown): boolean {
  for (const { node: n } of walk(node)) if ('SubLink' in n) return true;
  return false;
}

function hasAggregate(targets: Node[] | undefined, facts: CompileFacts): boolean {
  for (const { node } of walk(targets)) {
    const call = node.FuncCall as { funcname?: Node[]; over?: unknown } | undefined;
    if (call && !call.over && facts.aggregateNames.has(stringValue(call.funcname?.at(-1)) ?? '')) return true;
  }
  return false;
}

function targetValue(stmt: SelectStmt): Node {
  const target = stmt.targetList?.[0];
  if (!target || !('ResTarget' in target) || !target.ResTarget.val)
    throw new UnsupportedConstruct(SUBQUERIES);
  return target.ResTarget.val;
}

function column(alias: string, name: string): Node {
  return { ColumnRef: { fields: [{ String: { sval: alias } }, { String: { sval: name } }] } };
}

function equals(lexpr: Node, rexpr: Node): Node {
  return { A_Expr: { kind: 'AEXPR_OP', name: [{ String: { sval: '=' } }], lexpr: clone(lexpr), rexpr } };
}

/** Replaces each subquery (not descending into it) by what `f` returns for it. */
function mapSubLinks(node: Node, f: (link: SubLinkNode) => Node): Node {
  const visit = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(visit);
    if (value === null || typeof value !== 'object') return value;
    const link = (value as { SubLink?: SubLinkNode }).SubLink;
    if (link) return f(link);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, visit(v)]));
  };
  return visit(node) as Node;
}
