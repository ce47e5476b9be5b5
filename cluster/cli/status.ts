// `pgtrickle status`: one row per stream table from pgt_status(), with its latest refresh.
import { formatDuration, formatMode, table } from '../tui/format.js';
import { readStatus, type StatusRow } from './catalog.js';
import { openSession } from './db.js';
import { about } from './errors.js';
import { output } from './output.js';

export interface StatusFlags {
  databaseUrl?: string;
  json?: boolean;
}

function statusTable(rows: readonly StatusRow[], now: number): string[] {
  return table(
    ['NAME', 'STATUS', 'MODE', 'SCHEDULE', 'STALENESS', 'LAST REFRESH', 'ERRORS'],
    rows.map((r) => [
      r.name,
      r.status,
      formatMode(r.refreshMode, r.effectiveMode),
      r.schedule ?? 'calculated',
      r.dataTimestamp === null ? '-' : formatDuration(now - r.dataTimestamp),
      r.lastRefresh === null
        ? '-'
        : `${r.lastRefresh.action} ${formatDuration(r.lastRefresh.durationMs)}, ${formatDuration(now - r.lastRefresh.at)} ago`,
      r.consecutiveErrors === 0 ? '0' : `${r.consecutiveErrors}: ${r.lastError ?? ''}`,
    ]),
  );
}

export async function runStatus(opts: StatusFlags): Promise<void> {
  const out = output(opts.json ?? false);
  const session = await openSession(opts.databaseUrl, 'status');
  try {
    const rows = await about('status', () => readStatus(session.client, 1));
    const now = Date.now();
    if (rows.length === 0) out.line('no stream tables');
    else for (const line of statusTable(rows, now)) out.line(line);
    out.result(
      rows.map((r) => ({
        name: r.name,
        status: r.status,
        refresh_mode: r.refreshMode,
        effective_mode: r.effectiveMode,
        schedule: r.schedule,
        is_populated: r.populated,
        data_timestamp: r.dataTimestamp === null ? null : new Date(r.dataTimestamp).toISOString(),
        staleness_ms: r.dataTimestamp === null ? null : now - r.dataTimestamp,
        last_refresh:
          r.lastRefresh === null
            ? null
            : {
                at: new Date(r.lastRefresh.at).toISOString(),
                action: r.lastRefresh.action,
                duration_ms: r.lastRefresh.durationMs,
              },
        consecutive_errors: r.consecutiveErrors,
        last_error: r.lastError,
      })),
    );
  } finally {
    await session.end();
  }
}
