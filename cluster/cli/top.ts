// `pgtrickle top`: the TUI. Rows come from pgt_status() and the refresh history; a NATS event of
// the database (refreshed, failed, status) triggers a reload, a poll covers lost events and
// refreshes from psql; members and leases come from the cluster's KV bucket by watch.
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  bucketName,
  decode,
  eventSubject,
  type Lease,
  leaseKey,
  type Member,
  memberKey,
  NatsEventBus,
  NatsLeaseStore,
  NatsMembership,
} from '../nats/index.js';
import { nodeLines, render } from '../tui/render.js';
import { Screen } from '../tui/screen.js';
import { initialState, parseKeys, type TopState, update, withRows } from '../tui/state.js';
import { readStatus } from './catalog.js';
import { currentDatabase, openSession, resolve, type Session } from './db.js';
import { about } from './errors.js';
import { connectNats, natsUrls } from './nats.js';
import { output } from './output.js';
import { describeOutcome, refreshNow } from './refresh.js';

export interface TopFlags {
  databaseUrl?: string;
  natsUrl?: string;
  json?: boolean;
}

/** The bucket if the cluster made one; a viewer never creates it. */
async function clusterBucket(nc: NatsConnection, db: string): Promise<KV | undefined> {
  const kv = await new Kvm(nc).open(bucketName(db));
  try {
    await kv.status();
    return kv;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined;
    throw err;
  }
}

async function readBucket(kv: KV): Promise<{ members: Map<string, Member>; leases: Map<string, Lease> }> {
  const members = new Map<string, Member>();
  const leases = new Map<string, Lease>();
  const store = new NatsLeaseStore(kv);
  for await (const key of await kv.keys()) {
    if (key.startsWith(leaseKey(''))) {
      const lease = await store.read(key).catch(() => undefined);
      if (lease !== undefined) leases.set(key.slice(leaseKey('').length), lease);
    } else if (key.startsWith(memberKey(''))) {
      const entry = await kv.get(key);
      if (entry?.operation !== 'PUT') continue;
      try {
        const { v: _, ...member } = decode<Member & { v: 1 }>(entry.value, 'a member', 1);
        members.set(key.slice(memberKey('').length), member);
      } catch {
        // A member of a newer schema is left out of the snapshot.
      }
    }
  }
  return { members, leases };
}

/** With --json: what the screen would show, once, for programs. */
async function snapshot(session: Session, opts: TopFlags): Promise<void> {
  const db = await about('top', () => currentDatabase(session.client));
  const rows = await about('top', () => readStatus(session.client, 20));
  const nc = await connectNats(natsUrls(opts.natsUrl), 'pgtrickle top');
  try {
    const kv = await clusterBucket(nc, db);
    const bucket = kv === undefined ? { members: new Map(), leases: new Map() } : await readBucket(kv);
    const now = Date.now();
    const state: TopState = { ...withRows(initialState(db), rows, now), ...bucket };
    output(true).result({
      db,
      stream_tables: rows.map((r) => ({
        name: r.name,
        status: r.status,
        refresh_mode: r.refreshMode,
        effective_mode: r.effectiveMode,
        schedule: r.schedule,
        staleness_ms: r.dataTimestamp === null ? null : now - r.dataTimestamp,
        last_refresh_ms: r.lastRefresh?.durationMs ?? null,
        latencies_ms: r.latencies,
        consecutive_errors: r.consecutiveErrors,
        node: bucket.leases.get(r.id)?.holder ?? null,
      })),
      nodes: nodeLines(state, now).map((n) => ({
        node: n.node,
        state: n.state,
        stream_tables: n.held,
        expired_leases: n.expired,
      })),
    });
  } finally {
    await nc.close();
  }
}

export async function runTop(opts: TopFlags, pollMs: number): Promise<void> {
  const session = await openSession(opts.databaseUrl, 'top');
  try {
    if (opts.json) return await snapshot(session, opts);
    await interactive(session, opts, pollMs);
  } finally {
    await session.end();
  }
}

async function interactive(session: Session, opts: TopFlags, pollMs: number): Promise<void> {
  const db = await about('top', () => currentDatabase(session.client));
  let state = initialState(db);
  const screen = new Screen();
  const draw = () =>
    screen.draw(render(state, { width: screen.columns, height: screen.rows, now: Date.now() }));
  // One connection: its work runs one at a time, so a refresh's transaction is never interleaved.
  let queue: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => undefined);
    return next;
  };
  let reloadQueued = false;
  const reload = () => {
    if (reloadQueued) return;
    reloadQueued = true;
    void exclusive(async () => {
      reloadQueued = false;
      try {
        // Read first, then merge into the state as it is now: keys typed during the query
        // change it, and a state taken before the await would drop them.
        const rows = await readStatus(session.client, 20);
        state = withRows(state, rows, Date.now());
      } catch (err) {
        state = { ...state, message: `database: ${err instanceof Error ? err.message : String(err)}` };
      }
      draw();
    });
  };

  let nc: NatsConnection | undefined;
  const stops: (() => void)[] = [];
  let watching = false;
  const watchBucket = async () => {
    if (!nc || watching) return;
    watching = true;
    const kv = await clusterBucket(nc, db).catch((err) => {
      watching = false;
      throw err;
    });
    if (kv === undefined) {
      // No node has run for this database yet; the poll asks again.
      watching = false;
      state = { ...state, nats: 'connected, no cluster bucket yet' };
      return;
    }
    state = { ...state, nats: 'connected' };
    stops.push(
      await new NatsMembership(kv).watch((node, member) => {
        const members = new Map(state.members);
        if (member === undefined) members.delete(node);
        else members.set(node, member);
        state = { ...state, members };
        draw();
      }),
      await new NatsLeaseStore(kv).watch(leaseKey('>'), (key, lease) => {
        const leases = new Map(state.leases);
        const id = key.slice(leaseKey('').length);
        if (lease === undefined) leases.delete(id);
        else leases.set(id, lease);
        state = { ...state, leases };
        draw();
      }),
    );
  };
  const joinNats = async () => {
    try {
      nc = await connectNats(natsUrls(opts.natsUrl), 'pgtrickle top');
      stops.push(new NatsEventBus(nc).subscribe(eventSubject(db, '*', '*', '*'), reload));
      state = { ...state, nats: 'connected' };
      await watchBucket();
    } catch (err) {
      state = { ...state, nats: `unavailable (${err instanceof Error ? err.message : String(err)})` };
    }
    draw();
  };

  await new Promise<void>((quit) => {
    const timers: NodeJS.Timeout[] = [];
    const finish = () => {
      for (const t of timers) clearInterval(t);
      process.off('SIGINT', finish);
      process.off('SIGTERM', finish);
      screen.close();
      quit();
    };
    const onInput = (data: string) => {
      for (const key of parseKeys(data)) {
        const next = update(state, key);
        state = next.state;
        if (next.effect?.kind === 'quit') return finish();
        if (next.effect?.kind === 'refresh') {
          const name = next.effect.name;
          void exclusive(async () => {
            try {
              const outcome = await refreshNow(session, await resolve(session.client, name));
              state = { ...state, message: describeOutcome(outcome) };
            } catch (err) {
              state = {
                ...state,
                message: `refresh ${name}: ${err instanceof Error ? err.message : String(err)}`,
              };
            }
          }).then(reload);
        }
      }
      draw();
    };
    screen.open(onInput, draw);
    process.on('SIGINT', finish);
    process.on('SIGTERM', finish);
    draw();
    reload();
    void joinNats();
    timers.push(
      setInterval(() => {
        reload();
        void watchBucket().catch(() => undefined);
      }, pollMs),
      // Staleness and node health move with the clock, not only with events.
      setInterval(draw, 1_000),
    );
  });
  for (const stop of stops) stop();
  await nc?.close().catch(() => undefined);
  await queue;
}
