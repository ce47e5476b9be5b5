// Delta rule for LEFT, RIGHT and FULL joins: L ⟕ R = (L ⋈ R) ⊎ (antijoin(L, R) × NULLs of R).
// The inner part follows the bilinear rule; the antijoin part is one variant per preserved side.
import type { JoinExpr } from '@pgsql/types';
import { ident } from '../../../shared/pg/quote.js';
import { unreachable } from '../../../shared/unreachable.js';
import type { FromItem, JoinType } from '../analyze.js';
import {
  aliasRenamed,
  deparse,
  expr,
  type Node,
  parseStatements,
  type SelectStmt,
  selectOf,
} from '../ast.js';
import { UnsupportedConstruct } from '../errors.js';
import { anyOf, guardSql } from './guard.js';
import { outputNames } from './names.js';
import type { Referenced } from './referenced.js';
import { keptColumns, type Sources } from './sources.js';
import { combine, type Side, type Variant } from './variants.js';

type OuterJoin = Extract<FromItem, { kind: 'join' }> & { type: Exclude<JoinType, 'inner'> };

/** A relation of the preserved side, whose alias the antijoin variant binds to affected rows. */
interface Leaf {
  alias: string;
  columns: Column[];
}

interface Column {
  /** The visible name, as the query refers to it through the alias. */
  name: string;
  /** Its flattened name among all columns of the preserved side. */
  flat: string;
  /** A primary key column never null-extended: compared with = so that an index finds the row. */
  key: boolean;
}

export function outerJoinSide(
  item: OuterJoin,
  left: Side<Node>,
  right: Side<Node>,
  sources: Sources,
): Side<Node> {
  const { referenced } = sources;
  const join = (item.node as { JoinExpr: JoinExpr }).JoinExpr;
  const inner = combine(
    left,
    right,
    (larg, rarg): Node => ({ JoinExpr: { ...join, jointype: 'JOIN_INNER', larg, rarg } }),
  );
  // ON false null-extends every alias of the other side whatever its shape.
  const nullLeft = (bound: Node): Node => ({
    JoinExpr: { ...join, jointype: 'JOIN_LEFT', larg: bound, rarg: right.cur, quals: expr('false') },
  });
  const nullRight = (bound: Node): Node => ({
    JoinExpr: { ...join, jointype: 'JOIN_RIGHT', larg: left.cur, rarg: bound, quals: expr('false') },
  });
  const quals = join.quals ?? expr('true');
  const unmatched = ((): (Variant<Node> | undefined)[] => {
    switch (item.type) {
      case 'left':
        return [antijoin(leavesOf(item.left, referenced), left, right, quals, nullLeft, sources)];
      case 'right':
        return [antijoin(leavesOf(item.right, referenced), right, left, quals, nullRight, sources)];
      case 'full':
        return [
          antijoin(leavesOf(item.left, referenced), left, right, quals, nullLeft, sources),
          antijoin(leavesOf(item.right, referenced), right, left, quals, nullRight, sources),
        ];
      default:
        return unreachable(item.type);
    }
  })();
  return {
    cur: item.node,
    // Weighted rows of the old sides would miscount unmatched rows (a row and its cancelling
    // change both match), so an outer join has no old state and its neighbours join it as now.
    old: undefined,
    deltas: [...inner.deltas, ...unmatched.filter((v): v is Variant<Node> => v !== undefined)],
  };
}

/**
 * The change of the preserved side's unmatched rows. For each affected row l (a row of a
 * preserved delta, or a current preserved row the ON condition pairs with a row of an other-side
 * delta): weight = m_new(l)·[no match now] − m_old(l)·[no match before], where m_new counts l in
 * the preserved side now, m_old = m_new − its delta weights, matches now are counted in the
 * other side now and matches before = matches now − the delta weights of the matching rows.
 */
function antijoin(
  leaves: Leaf[],
  kept: Side<Node>,
  other: Side<Node>,
  quals: Node,
  nulled: (bound: Node) => Node,
  sources: Sources,
): Variant<Node> | undefined {
  if (kept.deltas.length + other.deltas.length === 0) return undefined;
  const holes: Node[] = [];
  const hole = (node: Node) => `__pgt_hole${holes.push(node) - 1}`;
  const columns = leaves.flatMap((leaf) => leaf.columns.map((column) => ({ leaf, column })));
  const ref = (leaf: Leaf, column: Column) => `${ident(leaf.alias)}.${ident(column.name)}`;
  const select = columns.map(({ leaf, column }) => `${ref(leaf, column)} AS ${column.flat}`).join(', ');
  const flat = (source: string) => columns.map(({ column }) => `${source}.${column.flat}`).join(', ');
  const weight = (v: Variant<Node>) => [String(v.sign), ...v.factors].join(' * ');
  const on = `(${deparse(quals)})`;
  const same = columns.map(({ leaf, column }) =>
    column.key
      ? `${ref(leaf, column)} = __pgt_x.${column.flat}`
      : `${ref(leaf, column)} IS NOT DISTINCT FROM __pgt_x.${column.flat}`,
  );
  const affected = [
    ...kept.deltas.map(
      (v) => `SELECT ${select}, ${weight(v)} AS __pgt_w FROM ${hole(v.node)} WHERE ${guardSql(v.guard)}`,
    ),
    // Rows of an unchanged multiplicity whose partners may have changed; they weigh nothing here.
    ...other.deltas.map(
      (v) =>
        `SELECT ${select}, 0 AS __pgt_w FROM ${hole(kept.cur)} JOIN ${hole(v.node)} ON ${on} WHERE ${guardSql(v.guard)}`,
    ),
  ];
  // s, the delta weight of an affected row's partners, is joined and grouped rather than
  // summed by a subquery per row: that subquery could only rescan the other side's changes for
  // every affected row. The affected rows, deduplicated, are joined to those changes by the ON
  // condition (a hash join where it is an equality) and folded into the same grouping as dl.
  const partners = other.deltas.map(
    (v) =>
      `SELECT ${flat('__pgt_k')}, 0 AS __pgt_dl, ${weight(v)} AS __pgt_s
         FROM (SELECT DISTINCT ${flat('__pgt_a')} FROM (${affected.join(' UNION ALL ')}) __pgt_a) __pgt_k
         ${bind('__pgt_k', leaves)} JOIN ${hole(v.node)} ON ${on} WHERE ${guardSql(v.guard)}`,
  );
  // The ON condition names the preserved aliases, so it is evaluated where they are bound to
  // the affected row; the copies of the preserved side counted for m_new shadow those bindings.
  // OFFSET 0 keeps the counts in their own subquery: pulled up, each would be run once for
  // every reference to it in the weight and its filter.
  const counts = [
    `(SELECT count(*) FROM ${hole(kept.cur)} WHERE ${same.join(' AND ') || 'true'}) AS m`,
    `(SELECT count(*) FROM ${hole(other.cur)} WHERE ${on}) AS n`,
  ];
  const own = affected.map(
    (a) => `SELECT ${flat('__pgt_b')}, __pgt_b.__pgt_w AS __pgt_dl, 0 AS __pgt_s FROM (${a}) __pgt_b`,
  );
  const sql = `SELECT ${flat('__pgt_x')}, __pgt_v.__pgt_w
      FROM (SELECT ${flat('__pgt_u')}, sum(__pgt_u.__pgt_dl) AS __pgt_dl, sum(__pgt_u.__pgt_s) AS __pgt_s
              FROM (${[...own, ...partners].join(' UNION ALL ')}) __pgt_u GROUP BY ${flat('__pgt_u')}) __pgt_x
      ${bind('__pgt_x', leaves)}
      CROSS JOIN LATERAL (SELECT ${counts.join(', ')} OFFSET 0) __pgt_m
      CROSS JOIN LATERAL (SELECT CASE WHEN __pgt_m.n = 0 THEN __pgt_m.m ELSE 0 END
                               - CASE WHEN __pgt_m.n = __pgt_x.__pgt_s THEN __pgt_m.m - __pgt_x.__pgt_dl ELSE 0 END
                                 AS __pgt_w) __pgt_v
     WHERE __pgt_v.__pgt_w <> 0`;
  // Named after its first alias: preserved sides of distinct outer joins in one FROM list are
  // disjoint, so their variants never share this name.
  // Computed once per statement: the variant is joined in as many arms as the items beside the
  // outer join have terms, and each computed it again (TPC-H Q21: 0.2 s each).
  const name = ident(`__pgt_l_${leaves[0]?.alias ?? ''}`);
  const cte = sources.derived(deparse({ SelectStmt: filled(sql, holes) }));
  const bound = filled(`SELECT FROM ${cte} AS ${name} ${bind(name, leaves)}`, []).fromClause?.[0];
  if (!bound) throw new Error('an antijoin variant without a FROM item');
  return {
    node: nulled(bound),
    factors: [`${name}.__pgt_w`],
    sign: 1,
    guard: anyOf([...kept.deltas, ...other.deltas].map((v) => v.guard)),
  };
}

/** Binds every preserved alias to the flattened columns of `source`, row by row. */
function bind(source: string, leaves: Leaf[]): string {
  return leaves
    .map((leaf) => {
      const columns = leaf.columns.map((c) => `${source}.${c.flat} AS ${ident(c.name)}`);
      return `CROSS JOIN LATERAL (SELECT ${columns.join(', ')}) AS ${ident(leaf.alias)}`;
    })
    .join(' ');
}

/** Parses generated SQL and puts FROM nodes of the query where it names __pgt_hole<i>. */
function filled(sql: string, holes: Node[]): SelectStmt {
  const substitute = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(substitute);
    if (value === null || typeof value !== 'object') return value;
    const relname = (value as { RangeVar?: { relname?: string } }).RangeVar?.relname;
    const hole = relname?.match(/^__pgt_hole(\d+)$/);
    if (hole) return holes[Number(hole[1])];
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v)]));
  };
  const stmt = selectOf(substitute(parseStatements(sql)[0]) as Node);
  if (!stmt) throw new Error('generated SQL is not a SELECT');
  return stmt;
}

/** The aliases of a preserved side with the columns each exposes. */
function leavesOf(item: FromItem, referenced: Referenced): Leaf[] {
  const leaves: Leaf[] = [];
  let count = 0;
  const add = (alias: string, names: string[], keys: ReadonlySet<string>, node: Node, nullable: boolean) => {
    const visible = aliasRenamed(node, names);
    if (new Set(visible).size !== visible.length) {
      throw new UnsupportedConstruct(
        `two columns of ${alias} with the same name on the preserved side of an outer join`,
      );
    }
    leaves.push({
      alias,
      columns: visible.map((name, i) => ({
        name,
        flat: `__pgt_c${count++}`,
        key: !nullable && keys.has(names[i] ?? ''),
      })),
    });
  };
  const visit = (at: FromItem, nullable: boolean): void => {
    switch (at.kind) {
      case 'scan': {
        const names = keptColumns(at.relation, referenced).map((c) => c.name);
        add(at.alias, names, new Set(at.relation.key ?? []), at.node, nullable);
        return;
      }
      case 'subquery':
        add(at.alias, outputNames(at.query), new Set(), at.node, nullable);
        return;
      case 'join':
        visit(at.left, nullable || at.type === 'right' || at.type === 'full');
        visit(at.right, nullable || at.type === 'left' || at.type === 'full');
        return;
      case 'constant':
        throw new UnsupportedConstruct(
          'a function or VALUES list on the preserved side of an outer join',
          'Put it on the other side of the join, or use FULL.',
        );
      default:
        unreachable(at);
    }
  };
  visit(item, false);
  return leaves;
}
