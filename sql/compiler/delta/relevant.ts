// A grouped subquery joined by an equality to a table that the block also filters by itself
// (TPC-H Q17: `p_partkey = s.key AND p_brand = … AND p_container = …`) matters to the block only
// for the keys of that table's rows which pass those filters, now or among its changes: every
// arm joins the subquery, now, before or its delta, to such a row. Its delta is computed for
// those keys alone, not for every group the input's changes touch (Q17 at SF 0.1, 1%: 10,756
// touched groups, of which a few dozen are parts of the brand and container asked for).
import { ident, qualified } from '../../../shared/pg/quote.js';
import type { FromItem } from '../analyze.js';
import { conjuncts, deparse, type Node, walk } from '../ast.js';
import { subqueryColumn } from './names.js';
import { columnRef, equality } from './probe.js';
import { deltaCte, type Sources } from './sources.js';

export interface Relevant {
  /** The position of the subquery's output the block joins on. */
  position: number;
  /** A SELECT of the values that column can match: a superset of the keys the block reads. */
  sql: string;
}

export function relevantKeys(
  items: FromItem[],
  where: Node | undefined,
  sources: Sources,
): Map<number, Relevant> {
  const relevant = new Map<number, Relevant>();
  const at = new Map<string, number>();
  items.forEach((item, i) => {
    if (item.kind === 'scan' || item.kind === 'subquery') at.set(item.alias, i);
  });
  const all = conjuncts(where);
  for (const conjunct of all) {
    const sides = equality(conjunct);
    if (!sides) continue;
    for (const [mine, other] of [sides, [sides[1], sides[0]] as const]) {
      const sub = columnRef(mine);
      const partner = columnRef(other);
      const s = sub && items[at.get(sub[0]) ?? -1];
      const p = partner && items[at.get(partner[0]) ?? -1];
      if (!sub || !partner || s?.kind !== 'subquery' || p?.kind !== 'scan') continue;
      if (
        s.query.kind !== 'aggregate' ||
        s.query.groupBy.length === 0 ||
        relevant.has(at.get(sub[0]) ?? -1)
      ) {
        continue;
      }
      const position = subqueryColumn(s, sub[1]);
      // Any subset of the partner's own conditions gives a superset of the keys: only plain ones
      // that can leave a row out. A key column IS NOT NULL (what unnesting adds to `IN`) keeps
      // every row, and TPC-H Q20 hashed all of partsupp for it at every refresh.
      const key = new Set(p.relation.key ?? []);
      const filters = all.filter(
        (c) => c !== conjunct && readsOnly(c, p.alias) && !keyNotNull(c, p.alias, key),
      );
      if (position < 0 || filters.length === 0) continue;
      const value = deparse(other);
      const cond = filters.map((f) => deparse(f)).join(' AND ');
      const changes = deltaCte(sources.use(p.relation).index);
      relevant.set(at.get(sub[0]) ?? -1, {
        position,
        sql: `SELECT ${value} FROM ${qualified(p.relation.schema, p.relation.name)} AS ${ident(p.alias)} WHERE ${cond}
          UNION ALL SELECT ${value} FROM ${changes} AS ${ident(p.alias)} WHERE ${cond}`,
      });
      break;
    }
  }
  return relevant;
}

/** `alias.column IS NOT NULL` for a primary key column of `alias`: true of every row. */
function keyNotNull(node: Node, alias: string, key: ReadonlySet<string>): boolean {
  const test = 'NullTest' in node ? node.NullTest : undefined;
  const ref = test?.nulltesttype === 'IS_NOT_NULL' ? columnRef(test.arg) : undefined;
  return ref?.[0] === alias && key.has(ref[1]);
}

/** A condition on columns of `alias` alone, without subqueries. */
function readsOnly(node: Node, alias: string): boolean {
  let refs = 0;
  for (const { node: n } of walk(node)) {
    if ('SubLink' in n) return false;
    if (!('ColumnRef' in n)) continue;
    const ref = columnRef(n);
    if (!ref || ref[0] !== alias) return false;
    refs++;
  }
  return refs > 0;
}
