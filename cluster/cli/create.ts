// `pgtrickle create NAME --query …`: pgtrickle.create_stream_table, which also fills the table;
// that initial population can take minutes on large sources, hence the progress line.

import { openSession, resolve } from './db.js';
import { about } from './errors.js';
import { output, progress } from './output.js';

export interface CreateFlags {
  databaseUrl?: string;
  query: string;
  schedule?: string;
  mode?: string;
  json?: boolean;
}

export async function runCreate(name: string, opts: CreateFlags): Promise<void> {
  const out = output(opts.json ?? false);
  const session = await openSession(opts.databaseUrl, 'create');
  const subject = `create ${name}`;
  const spinner = progress(`creating ${name}: populating`, out.json);
  try {
    // Omitted options keep the SQL defaults, which stay documented in one place.
    const params: unknown[] = [name, opts.query];
    const args = ['$1', '$2'];
    if (opts.schedule !== undefined) args.push(`schedule => $${params.push(opts.schedule)}`);
    if (opts.mode !== undefined) args.push(`refresh_mode => $${params.push(opts.mode)}`);
    const created = await about(subject, async () => {
      await session.client.query(`SELECT pgtrickle.create_stream_table(${args.join(', ')})`, params);
      const ref = await resolve(session.client, name);
      const { rows } = await session.client.query<{
        schedule: string;
        refresh_mode: string;
        rows_inserted: string | null;
        duration_ms: number | null;
      }>(
        `SELECT st.schedule, st.refresh_mode, h.rows_inserted::text AS rows_inserted,
                (extract(epoch FROM h.end_time - h.start_time) * 1000)::float8 AS duration_ms
           FROM pgtrickle.pgt_stream_tables st
           LEFT JOIN pgtrickle.pgt_refresh_history h ON h.pgt_id = st.pgt_id AND h.initiated_by = 'INITIAL'
          WHERE st.pgt_id = $1`,
        [ref.id],
      );
      return { ref, row: rows[0] };
    });
    spinner.stop();
    const notices = session.takeNotices();
    for (const n of notices) out.note(`${n.severity.toLowerCase()}: ${n.message}`);
    const populated = created.row?.rows_inserted ?? null;
    const durationMs = created.row?.duration_ms ?? null;
    out.line(
      `created stream table ${created.ref.qualified} (schedule ${created.row?.schedule}, mode ${created.row?.refresh_mode})` +
        (populated === null ? '' : `: ${populated} rows in ${Math.round(durationMs ?? 0)} ms`),
    );
    out.result({
      name: created.ref.qualified,
      schedule: created.row?.schedule,
      refresh_mode: created.row?.refresh_mode,
      rows_inserted: populated === null ? null : Number(populated),
      duration_ms: durationMs,
      notices: notices.map((n) => n.message),
    });
  } finally {
    spinner.stop();
    await session.end();
  }
}
