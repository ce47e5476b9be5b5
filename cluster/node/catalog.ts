// What a node reads from the catalog: the stream tables with the facts their actors start from,
// and the DAG edges between them.
import type pg from 'pg';
import type { StreamTableStatus } from '../../actors/stream-table/index.js';
import { qualified } from '../../shared/pg/quote.js';

export interface StreamTableRow {
  readonly id: string;
  readonly schema: string;
  readonly name: string;
  /** quoted and schema-qualified, as pgt_status() shows it */
  readonly qualifiedName: string;
  readonly schedule: string | null;
  readonly status: StreamTableStatus;
  /** a new definition to rebuild, or never compiled by a node (effective_mode NULL) */
  readonly needsReinit: boolean;
  readonly effectiveMode: 'FULL' | 'DIFFERENTIAL' | null;
  readonly populated: boolean;
  readonly lastRefreshAt: number | undefined;
  readonly consecutiveErrors: number;
  readonly epoch: number;
  /** ids of the stream tables this one reads */
  readonly sources: readonly string[];
  /** OIDs of the other relations it reads: with `sources`, they tell diamonds (cluster/dag) */
  readonly tables: readonly string[];
}

interface Raw {
  id: string;
  schema: string;
  name: string;
  schedule: string | null;
  status: StreamTableStatus;
  needs_reinit: boolean;
  effective_mode: 'FULL' | 'DIFFERENTIAL' | null;
  is_populated: boolean;
  data_ms: string | null;
  consecutive_errors: number;
  fencing_epoch: string;
  sources: string[];
  tables: string[];
}

const SQL = `
  SELECT st.pgt_id::text AS id, st.pgt_schema AS schema, st.pgt_name AS name, st.schedule, st.status,
         st.needs_reinit, st.effective_mode, st.is_populated,
         (extract(epoch FROM st.data_timestamp) * 1000)::bigint::text AS data_ms,
         st.consecutive_errors, st.fencing_epoch::text AS fencing_epoch,
         coalesce((SELECT array_agg(up.pgt_id::text ORDER BY up.pgt_id)
                     FROM pgtrickle.pgt_dependencies d
                     JOIN pgtrickle.pgt_stream_tables up ON up.pgt_relid = d.source_relid
                    WHERE d.pgt_id = st.pgt_id AND d.source_type = 'STREAM_TABLE'), '{}') AS sources,
         coalesce((SELECT array_agg(d.source_relid::text ORDER BY d.source_relid)
                     FROM pgtrickle.pgt_dependencies d
                    WHERE d.pgt_id = st.pgt_id AND d.source_type <> 'STREAM_TABLE'), '{}') AS tables
    FROM pgtrickle.pgt_stream_tables st`;

function fromRaw(r: Raw): StreamTableRow {
  return {
    id: r.id,
    schema: r.schema,
    name: r.name,
    qualifiedName: qualified(r.schema, r.name),
    schedule: r.schedule,
    status: r.status,
    needsReinit: r.needs_reinit || r.effective_mode === null,
    effectiveMode: r.effective_mode,
    populated: r.is_populated,
    lastRefreshAt: r.data_ms === null ? undefined : Number(r.data_ms),
    consecutiveErrors: r.consecutive_errors,
    epoch: Number(r.fencing_epoch),
    sources: r.sources,
    tables: r.tables,
  };
}

export async function readStreamTables(db: pg.Pool | pg.ClientBase): Promise<StreamTableRow[]> {
  const { rows } = await db.query<Raw>(`${SQL} ORDER BY st.pgt_id`);
  return rows.map(fromRaw);
}

/** The rows of `ids` still in the catalog, in one round trip: a takeover reads many at once. */
export async function readStreamTablesById(
  db: pg.Pool | pg.ClientBase,
  ids: readonly string[],
): Promise<StreamTableRow[]> {
  if (ids.length === 0) return [];
  const { rows } = await db.query<Raw>(`${SQL} WHERE st.pgt_id = ANY ($1::bigint[]) ORDER BY st.pgt_id`, [
    ids,
  ]);
  return rows.map(fromRaw);
}

/** The source watchers' one query per tick: which of `ids` have unconsumed changes. */
export async function pendingChanges(
  db: pg.Pool | pg.ClientBase,
  ids: readonly string[],
): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const { rows } = await db.query<{ id: string }>(
    'SELECT id::text AS id FROM pgtrickle._pending($1::bigint[]) id',
    [ids],
  );
  return new Set(rows.map((r) => r.id));
}
