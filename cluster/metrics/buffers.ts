// Change-buffer sizes for the metrics: the statistics' live-row estimate, not count(*), so a
// scrape costs one catalog query however large the buffers grow.
import type pg from 'pg';

export async function changeBufferRows(pool: pg.Pool): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ source: string; rows: string }>(
    `SELECT format('%s.%s', n.nspname, c.relname) AS source, coalesce(s.n_live_tup, 0)::text AS rows
       FROM pgtrickle.pgt_change_tracking ct
       JOIN pg_class c ON c.oid = ct.source_relid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_stat_user_tables s
         ON s.schemaname = 'pgtrickle_changes' AND s.relname = ct.buffer_name
      ORDER BY 1`,
  );
  return new Map(rows.map((r) => [r.source, Number(r.rows)]));
}
