// Inner-join blocks over relations that all have a primary key: each row of the stream table
// stems from exactly one combination of source rows, so the tuple of their keys (hidden columns
// __pgt_k<i>) identifies it. An UPDATE of a source row then becomes an UPDATE in place, found by
// one index probe and written by TID, and a FULL load inserts keys in scan order.
import { ident } from '../../../shared/pg/quote.js';
import { unreachable } from '../../../shared/unreachable.js';
import type { FromItem, QueryOp } from '../analyze.js';
import { clone, deparse, expr, type Node, resTarget } from '../ast.js';
import type { RootContext, RootPlan } from './aggregate.js';
import { queryArms } from './arms.js';
import { type Apply, NOT_TRUNCATED } from './statement.js';
import { renameTargets } from './variants.js';

interface KeyColumn {
  /** Hidden storage column. */
  name: string;
  /** The source column it copies, qualified by its relation's alias. */
  source: string;
  type: string;
}

/** The key columns of a block, or undefined when some relation has no key or the block is not inner joins of scans. */
export function keyColumns(op: QueryOp): KeyColumn[] | undefined {
  if (op.kind !== 'select') return undefined;
  const keys: KeyColumn[] = [];
  const visit = (item: FromItem): boolean => {
    switch (item.kind) {
      case 'scan': {
        const key = item.relation.key;
        if (!key?.length) return false;
        for (const column of key) {
          const type = item.relation.columns.find((c) => c.name === column)?.type;
          if (!type) return false;
          keys.push({ name: `__pgt_k${keys.length}`, source: `${ident(item.alias)}.${ident(column)}`, type });
        }
        return true;
      }
      case 'join':
        return (
          (item.node as { JoinExpr: { jointype?: string } }).JoinExpr.jointype === 'JOIN_INNER' &&
          visit(item.left) &&
          visit(item.right)
        );
      case 'subquery':
      case 'constant':
        return false;
      default:
        return unreachable(item);
    }
  };
  return op.from.length > 0 && op.from.every(visit) ? keys : undefined;
}

export function keyedRoot(
  op: Extract<QueryOp, { kind: 'select' }>,
  keys: KeyColumn[],
  ctx: RootContext,
): Omit<RootPlan, 'strategy'> {
  const keyTargets = keys.map((k) => resTarget(expr(k.source), k.name));
  const arms = queryArms(op, ctx.sources, (_stmt, targets: Node[]) => [
    ...renameTargets(targets, ctx.columns),
    ...keyTargets,
  ]);
  const stmt = clone(op.stmt);
  const cols = ctx.columns.map(ident);
  const hidden = keys.map((k) => k.name);
  return {
    hiddenColumns: keys.map((k) => ({ name: k.name, type: k.type })),
    indexColumns: hidden,
    fullSql: `INSERT INTO ${ctx.storage} (${[...cols, ...hidden].join(', ')})
      ${deparse({ SelectStmt: { ...stmt, targetList: [...(stmt.targetList ?? []), ...keyTargets] } })}`,
    arms,
    apply: keyedApply(ctx.storage, cols, hidden),
  };
}

function keyedApply(storage: string, cols: string[], keys: string[]): Apply {
  const all = [...cols, ...keys];
  const sameKey = (a: string, b: string) => keys.map((k) => `${a}.${k} = ${b}.${k}`).join(' AND ');
  const keyList = (alias: string) => keys.map((k) => `${alias}.${k}`).join(', ');
  return {
    ctes: [
      [
        '__pgt_net',
        `SELECT ${all.map((c) => `d.${c}`).join(', ')}, sum(d.__pgt_w)::bigint AS __pgt_w
           FROM __pgt_delta d WHERE ${NOT_TRUNCATED}
          GROUP BY ${all.map((c) => `d.${c}`).join(', ')} HAVING sum(d.__pgt_w) <> 0`,
      ],
      // After netting, a key has at most one row with weight +1 (its new version) and one with
      // −1 (its old one). No CTE is joined to another: each row finds its place in the stream
      // table by one index probe, in key order so that consecutive probes share index pages
      // (and, for a table loaded in key order, heap pages), and keys that disappear come from a
      // hashed EXCEPT. Rows are updated and deleted through TID arrays, which bound the scan of
      // the stream table however many rows PostgreSQL expects from the delta.
      [
        '__pgt_new',
        `SELECT n.*, t.tid FROM (SELECT * FROM __pgt_net o WHERE o.__pgt_w > 0 ORDER BY ${keyList('o')}) n
           LEFT JOIN LATERAL (SELECT s.ctid AS tid FROM ${storage} s WHERE ${sameKey('s', 'n')} LIMIT 1) t ON true`,
      ],
      [
        '__pgt_gone',
        `SELECT ${keyList('n')} FROM __pgt_net n WHERE n.__pgt_w < 0
         EXCEPT SELECT ${keyList('n')} FROM __pgt_net n WHERE n.__pgt_w > 0`,
      ],
      [
        '__pgt_upd',
        `UPDATE ${storage} t SET ${cols.map((c) => `${c} = n.${c}`).join(', ')}
           FROM __pgt_new n WHERE t.ctid = n.tid
            AND t.ctid = ANY (ARRAY(SELECT f.tid FROM __pgt_new f WHERE f.tid IS NOT NULL)) RETURNING 1`,
      ],
      [
        '__pgt_ins',
        `INSERT INTO ${storage} (${all.join(', ')})
         SELECT ${all.map((c) => `n.${c}`).join(', ')} FROM __pgt_new n WHERE n.tid IS NULL RETURNING 1`,
      ],
      [
        '__pgt_del',
        `DELETE FROM ${storage} t WHERE t.ctid = ANY (ARRAY(
           SELECT v.tid FROM __pgt_gone g
             CROSS JOIN LATERAL (SELECT s.ctid AS tid FROM ${storage} s WHERE ${sameKey('s', 'g')} LIMIT 1) v)) RETURNING 1`,
      ],
    ],
    inserted: '((SELECT count(*) FROM __pgt_ins) + (SELECT count(*) FROM __pgt_upd))',
    deleted: '((SELECT count(*) FROM __pgt_del) + (SELECT count(*) FROM __pgt_upd))',
  };
}
