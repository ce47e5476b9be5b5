// `pgtrickle refresh NAME [--wait]`: pgtrickle.refresh_stream_table in a transaction that also
// reads the history row the refresh wrote, so the report is of this refresh and no other.
//
// A refresh skipped because another one holds the stream table (a node, FOR UPDATE NOWAIT) may
// not include what was committed just before the command. With --wait the command listens for
// that table's events on NATS, and when the holder's refresh ends (refreshed or failed event,
// or a poll interval for holders that publish nothing, like psql) it asks again, until its own
// request either refreshes or finds nothing left to do.
import { setTimeout as sleep } from 'node:timers/promises';
import { type ClusterEvent, eventSubject, NatsEventBus } from '../nats/index.js';
import { count } from '../tui/format.js';
import { openSession, resolve, type Session, type StreamTableRef } from './db.js';
import { about, CommandFailed } from './errors.js';
import { connectNats, natsUrls } from './nats.js';
import { output } from './output.js';

export interface RefreshFlags {
  databaseUrl?: string;
  natsUrl?: string;
  wait?: boolean;
  json?: boolean;
}

export interface RefreshRow {
  readonly refresh_id: string;
  readonly action: string;
  readonly rows_inserted: number;
  readonly rows_deleted: number;
  readonly changes_consumed: number | null;
  readonly duration_ms: number;
  readonly frontier: string;
}

export interface RefreshOutcome {
  readonly name: string;
  readonly outcome: 'refreshed' | 'skipped';
  /** the NOTICE that says why it was skipped */
  readonly reason: string | null;
  readonly busy: boolean;
  readonly refresh: RefreshRow | null;
}

const SKIPPED = /^refresh skipped for ".*": (.*)$/s;

/** One refresh request in its own transaction; used by `refresh` and by the `r` key of `top`. */
export async function refreshNow(session: Session, ref: StreamTableRef): Promise<RefreshOutcome> {
  const { client } = session;
  session.takeNotices();
  await client.query('BEGIN');
  try {
    await client.query('SELECT pgtrickle.refresh_stream_table($1)', [ref.qualified]);
    // The row this transaction wrote, if any: a node's refresh committed meanwhile has another xmin.
    const { rows } = await client.query<{
      refresh_id: string;
      action: string;
      rows_inserted: string | null;
      rows_deleted: string | null;
      changes_consumed: string | null;
      duration_ms: number;
      frontier: string | null;
    }>(
      `SELECT refresh_id::text, action, rows_inserted::text, rows_deleted::text, changes_consumed::text,
              (extract(epoch FROM end_time - start_time) * 1000)::float8 AS duration_ms, frontier::text
         FROM pgtrickle.pgt_refresh_history
        WHERE pgt_id = $1 AND xmin = pg_current_xact_id()::xid`,
      [ref.id],
    );
    await client.query('COMMIT');
    const skip = session
      .takeNotices()
      .map((n) => SKIPPED.exec(n.message))
      .find((m) => m !== null);
    const row = rows[0];
    if (row === undefined || skip) {
      const reason = skip?.[0] ?? null;
      return {
        name: ref.qualified,
        outcome: 'skipped',
        reason,
        busy: /another refresh is in progress/.test(skip?.[1] ?? ''),
        refresh: null,
      };
    }
    return {
      name: ref.qualified,
      outcome: 'refreshed',
      reason: null,
      busy: false,
      refresh: {
        refresh_id: row.refresh_id,
        action: row.action,
        rows_inserted: Number(row.rows_inserted ?? 0),
        rows_deleted: Number(row.rows_deleted ?? 0),
        changes_consumed: row.changes_consumed === null ? null : Number(row.changes_consumed),
        duration_ms: row.duration_ms,
        frontier: row.frontier ?? '',
      },
    };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

export function describeOutcome(o: RefreshOutcome): string {
  if (o.refresh === null) return o.reason ?? `refresh skipped for ${o.name}`;
  const r = o.refresh;
  const changes = r.changes_consumed === null ? '' : `, ${count(r.changes_consumed, 'change')} consumed`;
  return (
    `refreshed ${o.name}: ${r.action}, ${count(r.rows_inserted, 'row')} inserted, ${r.rows_deleted} deleted` +
    `${changes}, ${Math.round(r.duration_ms)} ms (refresh ${r.refresh_id})`
  );
}

function describeEvent(e: ClusterEvent): string {
  switch (e.type) {
    case 'refreshed':
      return `node ${e.node} refreshed it: ${e.action} (refresh ${e.refresh_id})`;
    case 'failed':
      return `node ${e.node} failed to refresh it: ${e.error.message}`;
    case 'status':
      return `node ${e.node}: ${e.status}`;
  }
}

const POLL_MS = 1_000;

export async function runRefresh(name: string, opts: RefreshFlags, timeoutMs: number): Promise<void> {
  const out = output(opts.json ?? false);
  const session = await openSession(opts.databaseUrl, 'refresh');
  const subject = `refresh ${name}`;
  let stopNats: (() => Promise<void>) | undefined;
  try {
    const ref = await about(subject, () => resolve(session.client, name));
    const seen: ClusterEvent[] = [];
    let wake: (() => void) | undefined;
    if (opts.wait) {
      const nc = await connectNats(natsUrls(opts.natsUrl), `pgtrickle refresh ${ref.qualified}`);
      stopNats = () => nc.close();
      // Subscribed before the first request, so the end of the holder's refresh cannot slip by.
      new NatsEventBus(nc).subscribe(eventSubject(ref.db, ref.schema, ref.name, '*'), (event) => {
        if (event.type === 'status') return;
        seen.push(event);
        out.note(describeEvent(event));
        wake?.();
      });
      await nc.flush();
    }
    const deadline = Date.now() + timeoutMs;
    let outcome = await about(subject, () => refreshNow(session, ref));
    while (opts.wait && outcome.busy) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new CommandFailed(subject, `${outcome.reason} after waiting ${Math.round(timeoutMs / 1000)}s`, {
          hint: 'Raise --timeout, or see which node holds it with pgtrickle top.',
        });
      }
      await Promise.race([
        new Promise<void>((r) => {
          wake = r;
        }),
        sleep(Math.min(POLL_MS, left)),
      ]);
      wake = undefined;
      outcome = await about(subject, () => refreshNow(session, ref));
    }
    out.line(describeOutcome(outcome));
    out.result({ ...outcome, waited_for: seen });
  } finally {
    await stopNats?.().catch(() => undefined);
    await session.end();
  }
}
