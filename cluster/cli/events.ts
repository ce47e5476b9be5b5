// `pgtrickle events [NAME]`: tails the cluster's events on NATS, one line each (or JSON lines).
// The database names the subjects (pgtrickle.<db>.st.<schema>.<name>.<kind>), so it is asked once.
import type { ClusterEvent } from '../nats/index.js';
import { eventSubject, NatsEventBus } from '../nats/index.js';
import { count, formatDuration } from '../tui/format.js';
import { currentDatabase, openSession, resolve } from './db.js';
import { about } from './errors.js';
import { connectNats, natsUrls } from './nats.js';
import { output } from './output.js';

export interface EventsFlags {
  databaseUrl?: string;
  natsUrl?: string;
  json?: boolean;
}

// Like format('%I.%I') in pgt_status(), minus its keyword list: quotes unless lower-case plain.
function qualifiedName(e: ClusterEvent): string {
  const q = (s: string) => (/^[a-z_][a-z0-9_]*$/.test(s) ? s : `"${s.replaceAll('"', '""')}"`);
  return `${q(e.schema)}.${q(e.name)}`;
}

function formatEvent(e: ClusterEvent): string {
  const head = `${new Date(e.at).toISOString()} ${e.type.padEnd(9)} ${qualifiedName(e)}`;
  const tail = `node ${e.node} epoch ${e.epoch}`;
  switch (e.type) {
    case 'refreshed': {
      const changes = e.changes_consumed === null ? '' : ` ${count(e.changes_consumed, 'change')}`;
      return (
        `${head} ${e.action} +${e.rows_inserted} -${e.rows_deleted}${changes} ` +
        `${formatDuration(e.duration_ms)} refresh ${e.refresh_id} ${tail}`
      );
    }
    case 'failed':
      return `${head} ${e.work} failed (${e.consecutive_failures} in a row): ${e.error.message.replace(/\s*\n\s*/g, ' ')} ${tail}`;
    case 'status':
      return `${head} ${e.previous ?? '-'} → ${e.status} ${tail}`;
  }
}

/** Resolves after `count` events (never without it), or when the process is told to stop. */
export async function runEvents(name: string | undefined, opts: EventsFlags, count: number | undefined) {
  const out = output(opts.json ?? false);
  const session = await openSession(opts.databaseUrl, 'events');
  let subject: string;
  try {
    subject = await about(name === undefined ? 'events' : `events ${name}`, async () => {
      if (name === undefined) return eventSubject(await currentDatabase(session.client), '*', '*', '*');
      const ref = await resolve(session.client, name);
      return eventSubject(ref.db, ref.schema, ref.name, '*');
    });
  } finally {
    await session.end();
  }
  const nc = await connectNats(natsUrls(opts.natsUrl), 'pgtrickle events');
  let seen = 0;
  await new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      unsubscribe();
      done();
    };
    const unsubscribe = new NatsEventBus(nc).subscribe(subject, (event) => {
      if (out.json) out.result(event);
      else out.line(formatEvent(event));
      if (count !== undefined && ++seen >= count) stop();
    });
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (process.stderr.isTTY && !out.json) out.note(`listening on ${subject} (Ctrl-C to stop)`);
  });
  await nc.drain().catch(() => undefined);
}
