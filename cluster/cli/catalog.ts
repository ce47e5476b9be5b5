// What `status` and `top` read: pgt_status() joined with each stream table's recent refreshes,
// in one query whatever the number of stream tables.
import type pg from 'pg';

export interface LastRefresh {
  /** epoch ms of the commit */
  readonly at: number;
  readonly action: string;
  readonly durationMs: number;
}

export interface StatusRow {
  readonly id: string;
  /** quoted and schema-qualified, as pgt_status() shows it */
  readonly name: string;
  readonly status: string;
  readonly refreshMode: string;
  /** what refreshes do: null until a node compiled the query */
  readonly effectiveMode: string | null;
  readonly schedule: string | null;
  readonly populated: boolean;
  /** epoch ms of the data the table holds */
  readonly dataTimestamp: number | null;
  readonly consecutiveErrors: number;
  readonly lastError: string | null;
  readonly lastRefresh: LastRefresh | null;
  /** durations of the latest completed refreshes, oldest first */
  readonly latencies: readonly number[];
}

interface Raw {
  id: string;
  name: string;
  status: string;
  refresh_mode: string;
  effective_mode: string | null;
  schedule: string | null;
  is_populated: boolean;
  data_ms: number | null;
  consecutive_errors: number;
  last_error: string | null;
  latencies: number[] | null;
  last_at: number | null;
  last_action: string | null;
}

// The history index is (pgt_id, start_time DESC): the lateral reads n index entries per table.
const SQL = `
  SELECT st.pgt_id::text AS id, s.name, s.status, s.refresh_mode, st.effective_mode, s.schedule,
         s.is_populated, (extract(epoch FROM s.data_timestamp) * 1000)::float8 AS data_ms,
         s.consecutive_errors, st.last_error, h.latencies, h.last_at, h.last_action
    FROM pgtrickle.pgt_status() s
    JOIN pgtrickle.pgt_stream_tables st ON format('%I.%I', st.pgt_schema, st.pgt_name) = s.name
    LEFT JOIN LATERAL (
      SELECT array_agg(r.ms ORDER BY r.start_time, r.refresh_id) AS latencies,
             (array_agg(r.end_ms ORDER BY r.start_time DESC, r.refresh_id DESC))[1] AS last_at,
             (array_agg(r.action ORDER BY r.start_time DESC, r.refresh_id DESC))[1] AS last_action
        FROM (SELECT h.refresh_id, h.start_time, h.action,
                     (extract(epoch FROM h.end_time - h.start_time) * 1000)::float8 AS ms,
                     (extract(epoch FROM h.end_time) * 1000)::float8 AS end_ms
                FROM pgtrickle.pgt_refresh_history h
               WHERE h.pgt_id = st.pgt_id AND h.status = 'COMPLETED'
               ORDER BY h.start_time DESC, h.refresh_id DESC
               LIMIT $1) r
    ) h ON true
   ORDER BY st.pgt_schema, st.pgt_name`;

export async function readStatus(client: pg.ClientBase, latencies = 20): Promise<StatusRow[]> {
  const { rows } = await client.query<Raw>(SQL, [latencies]);
  return rows.map((r) => {
    const lat = r.latencies ?? [];
    const last = lat[lat.length - 1];
    return {
      id: r.id,
      name: r.name,
      status: r.status,
      refreshMode: r.refresh_mode,
      effectiveMode: r.effective_mode,
      schedule: r.schedule,
      populated: r.is_populated,
      dataTimestamp: r.data_ms,
      consecutiveErrors: r.consecutive_errors,
      lastError: r.last_error,
      lastRefresh:
        r.last_at === null || r.last_action === null || last === undefined
          ? null
          : { at: r.last_at, action: r.last_action, durationMs: last },
      latencies: lat,
    };
  });
}
