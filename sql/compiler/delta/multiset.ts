// Applying a delta to a stream table whose rows are a multiset (no aggregate on top): net
// weights per distinct row, then delete that many copies or insert that many copies. Copies
// are found through the hidden __pgt_row_id (a hash of the row) and compared in full.
import { ident } from '../../../shared/pg/quote.js';
import { type Apply, NOT_TRUNCATED } from './statement.js';

export const ROW_ID = '__pgt_row_id';

export function rowIdOf(values: string[]): string {
  return `pg_catalog.hash_record_extended(ROW(${values.join(', ')}), 0)`;
}

export function multisetApply(storage: string, columns: string[]): Apply {
  const cols = columns.map(ident);
  const d = cols.map((c) => `d.${c}`);
  const n = cols.map((c) => `n.${c}`);
  const same = cols.map((c) => `t2.${c} IS NOT DISTINCT FROM n.${c}`);
  return {
    ctes: [
      [
        '__pgt_net',
        `SELECT ${d.join(', ')}, ${rowIdOf(d)} AS ${ROW_ID}, sum(d.__pgt_w)::bigint AS __pgt_w
           FROM __pgt_delta d WHERE ${NOT_TRUNCATED}
          GROUP BY ${d.join(', ')} HAVING sum(d.__pgt_w) <> 0`,
      ],
      // One index probe per net row (LATERAL … LIMIT) finds exactly the copies to delete, and
      // the DELETE fetches them by TID: neither depends on what PostgreSQL estimates for CTEs.
      [
        '__pgt_victims',
        `SELECT v.tid FROM __pgt_net n CROSS JOIN LATERAL (
           SELECT t2.ctid AS tid FROM ${storage} t2
            WHERE t2.${ROW_ID} = n.${ROW_ID} AND ${same.join(' AND ')} LIMIT -n.__pgt_w) v
          WHERE n.__pgt_w < 0`,
      ],
      [
        '__pgt_del',
        `DELETE FROM ${storage} t WHERE t.ctid = ANY (ARRAY(SELECT v.tid FROM __pgt_victims v)) RETURNING 1`,
      ],
      [
        '__pgt_ins',
        `INSERT INTO ${storage} (${[...cols, ROW_ID].join(', ')})
         SELECT ${[...n, `n.${ROW_ID}`].join(', ')} FROM __pgt_net n
          CROSS JOIN LATERAL pg_catalog.generate_series(1, n.__pgt_w) WHERE n.__pgt_w > 0 RETURNING 1`,
      ],
    ],
    inserted: '(SELECT count(*) FROM __pgt_ins)',
    deleted: '(SELECT count(*) FROM __pgt_del)',
  };
}

export function multisetFull(storage: string, columns: string[], definingQuery: string): string {
  const cols = columns.map(ident);
  return `INSERT INTO ${storage} (${[...cols, ROW_ID].join(', ')})
    SELECT ${[...cols.map((c) => `q.${c}`), rowIdOf(cols.map((c) => `q.${c}`))].join(', ')}
      FROM (${definingQuery}) q(${cols.join(', ')})`;
}
