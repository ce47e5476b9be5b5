// Reads from the catalog what the compiler needs to plan one stream table.
import type pg from 'pg';
import type { CompileFacts, RelationFacts } from '../../sql/compiler/facts.js';
import type { StorageFacts } from '../../sql/compiler/plan.js';

export interface StreamTableFacts {
  pgtId: string;
  refreshMode: 'FULL' | 'DIFFERENTIAL' | 'AUTO';
  storage: StorageFacts;
  facts: CompileFacts;
}

const KINDS: Record<string, RelationFacts['kind']> = {
  TABLE: 'table',
  STREAM_TABLE: 'stream_table',
  VIEW: 'view',
  MATVIEW: 'matview',
  FOREIGN_TABLE: 'foreign_table',
};

export async function loadFacts(client: pg.ClientBase, pgtId: string): Promise<StreamTableFacts> {
  const st = await client.query<{
    pgt_schema: string;
    pgt_name: string;
    pgt_relid: number;
    defining_query: string;
    refresh_mode: StreamTableFacts['refreshMode'];
  }>(
    `SELECT pgt_schema, pgt_name, pgt_relid, defining_query, refresh_mode
       FROM pgtrickle.pgt_stream_tables WHERE pgt_id = $1`,
    [pgtId],
  );
  const row = st.rows[0];
  if (!row) throw new Error(`stream table ${pgtId} does not exist`);

  const outputs = await client.query<{ name: string; type: string }>(
    `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
      WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\\_\\_pgt\\_%' ORDER BY attnum`,
    [row.pgt_relid],
  );

  // pg_get_viewdef qualifies every name only when no search_path makes it visible. Inside the
  // caller's transaction (a node's reinit) a COMMIT here would end it early: the plan would be
  // installed without its refresh, outside the owner's role, and behind a transaction-mode
  // pooler on whichever server connection comes next. So only an idle client gets its own.
  const own = client.getTransactionStatus() !== 'T';
  if (own) await client.query('BEGIN');
  let relations: RelationFacts[];
  try {
    const { rows: saved } = await client.query<{ path: string }>(
      "SELECT current_setting('search_path') AS path, set_config('search_path', '', true)",
    );
    const rels = await client.query<{
      relid: number;
      schema: string;
      name: string;
      source_type: string;
      buffer: string | null;
      columns: { name: string; attnum: number; type: string; captured: boolean }[];
      view_definition: string | null;
      key: string[] | null;
      indexed: string[] | null;
      rows: number | null;
    }>(
      `SELECT c.oid::int AS relid, n.nspname AS schema, c.relname AS name, d.source_type, ct.buffer_name AS buffer,
              (SELECT json_agg(json_build_object('name', a.attname, 'attnum', a.attnum,
                        'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                        'captured', coalesce(a.attnum = ANY (ct.captured_attnums), false)) ORDER BY a.attnum)
                 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
              CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END AS view_definition,
              (SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM pg_catalog.pg_index i
                 CROSS JOIN LATERAL unnest(i.indkey::smallint[]) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = c.oid AND i.indisprimary) AS key,
              (SELECT array_agg(DISTINCT a.attname::text ORDER BY a.attname::text)
                 FROM pg_catalog.pg_index i
                 JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                 JOIN pg_catalog.pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                WHERE i.indrelid = c.oid AND i.indisvalid AND i.indpred IS NULL) AS indexed,
              CASE WHEN c.reltuples >= 0 THEN c.reltuples::float8 END AS rows
         FROM pgtrickle.pgt_dependencies d
         JOIN pg_catalog.pg_class c ON c.oid = d.source_relid
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = c.oid
        WHERE d.pgt_id = $1 ORDER BY c.oid`,
      [pgtId],
    );
    relations = rels.rows.map((r) => ({
      relid: r.relid,
      schema: r.schema,
      name: r.name,
      kind: KINDS[r.source_type] ?? 'table',
      columns: r.columns,
      ...(r.buffer ? { buffer: r.buffer } : {}),
      ...(r.key ? { key: r.key } : {}),
      ...(r.indexed ? { indexed: r.indexed } : {}),
      ...(r.rows !== null ? { rows: r.rows } : {}),
      ...(r.view_definition ? { viewDefinition: r.view_definition.replace(/;\s*$/, '') } : {}),
    }));
    if (own) await client.query('COMMIT');
    else await client.query("SELECT set_config('search_path', $1, true)", [saved[0]?.path ?? '']);
  } catch (err) {
    if (own) await client.query('ROLLBACK');
    throw err;
  }

  const names = await client.query<{ aggregates: string[]; volatile: string[] }>(
    `SELECT array(SELECT DISTINCT proname::text FROM pg_proc WHERE prokind = 'a') AS aggregates,
            array(SELECT DISTINCT proname::text FROM pg_proc WHERE provolatile = 'v' AND prokind = 'f') AS volatile`,
  );
  return {
    pgtId,
    refreshMode: row.refresh_mode,
    storage: { schema: row.pgt_schema, name: row.pgt_name },
    facts: {
      definingQuery: row.defining_query,
      outputColumns: outputs.rows,
      relations,
      aggregateNames: new Set(names.rows[0]?.aggregates),
      volatileNames: new Set(names.rows[0]?.volatile),
    },
  };
}
