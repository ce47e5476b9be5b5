// The node process: joins the cluster over NATS, runs one stream-table actor per lease it holds,
// ticks them from a queue by due time, publishes their events, and takes part in coordination
// (coordinator.ts). Everything durable is in PostgreSQL; a node can die at any instant (I4).

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { createActor } from 'xstate';
import {
  dueAt,
  type RefreshResult,
  type StreamTableInput,
  withWork,
} from '../../actors/stream-table/index.js';
import { kvReplicas } from '../../shared/config.js';
import { PgTrickleError } from '../../shared/errors/index.js';
import type { Logger } from '../../shared/logger.js';
import { parseSchedule } from '../../shared/schedule/index.js';
import { LIBRARY_VERSION } from '../../shared/version.js';
import { migrate } from '../../sql/migrate.js';
import { buildDag, type Dag, diamondGroup, scheduleOf } from '../dag/index.js';
import type { NodeMetrics } from '../metrics/index.js';
import {
  type ActorStatus,
  bucketName,
  type ClusterEvent,
  COORDINATOR_KEY,
  type EventBus,
  isExpired,
  type Lease,
  type LeaseStore,
  leaseKey,
  type Member,
  type Membership,
  NatsEventBus,
  NatsLeaseStore,
  NatsMembership,
  nodeId,
  openBucket,
  untilAnswered,
} from '../nats/index.js';
import { pendingChanges, readStreamTables, readStreamTablesById, type StreamTableRow } from './catalog.js';
import { catalogFit, compareCatalog, expectedCatalogVersion, mismatchMessage } from './catalog-version.js';
import { Coordinator } from './coordinator.js';
import { candidates, dispatch, type StreamTableActor } from './dispatch.js';
import { DueQueue } from './due-queue.js';
import { LeaseTable } from './lease-table.js';
import { type ConnectionPoolerMode, poolerBehaviour } from './pooler.js';
import { refreshRunners } from './refresh.js';

export interface NodeOptions {
  readonly databaseUrl: string;
  readonly natsUrls: readonly string[];
  readonly logger: Logger;
  readonly nodeId?: string;
  /** a lease not renewed for this long is given to another node */
  readonly leaseTtlMs?: number;
  /** membership heartbeats, lease renewals and coordinator rounds */
  readonly heartbeatMs?: number;
  /** scheduler tick: due stream tables are checked for changes and sent DUE */
  readonly tickMs?: number;
  /** connections for refreshes: at most this many run at once */
  readonly poolSize?: number;
  /** catalog reread even without pg_trickle_catalog notifications, which a lost LISTEN misses */
  readonly catalogRefreshMs?: number;
  /** wait between checks while the server is a hot standby, or the catalog version is not this node's */
  readonly recoveryPollMs?: number;
  /** apply pending migrations on start (default); when false, wait for `pgtrickle migrate` */
  readonly migrate?: boolean;
  /** registration in pgt_nodes, the catalog version check and the DDL fingerprint check */
  readonly upkeepMs?: number;
  /** replicas of the KV bucket when this node creates it (default: $PGTRICKLE_KV_REPLICAS or 1) */
  readonly kvReplicas?: number;
  /** Prometheus series and readiness, served by cluster/metrics */
  readonly metrics?: NodeMetrics;
  /** 'transaction' behind PgBouncer in transaction mode: no LISTEN, nothing kept in a session */
  readonly connectionPoolerMode?: ConnectionPoolerMode;
}

/** how long a starting node keeps asking a NATS cluster that does not answer */
const NATS_START_TIMEOUT_MS = 30_000;

const DEFAULTS = {
  leaseTtlMs: 10_000,
  tickMs: 100,
  poolSize: 8,
  recoveryPollMs: 5_000,
  upkeepMs: 5_000,
  historyCleanupMs: 24 * 60 * 60 * 1000,
};

interface Held {
  readonly id: string;
  readonly actor: StreamTableActor;
  lease: Lease;
  row: StreamTableRow;
  status: ActorStatus | null;
  /** set when this node let the table go itself (handover, drop), not fenced out */
  leaving: boolean;
}

function actorStatus(state: string): ActorStatus {
  switch (state) {
    case 'backoff':
      return 'BACKOFF';
    case 'suspended':
      return 'SUSPENDED';
    case 'released':
    case 'stopped':
      return 'RELEASED';
    default:
      return 'SCHEDULED';
  }
}

function errorFacts(error: unknown): { code: string | null; message: string } {
  const code = (error as { code?: unknown } | null)?.code;
  return {
    code: typeof code === 'string' ? code : null,
    message: error instanceof Error ? error.message : String(error),
  };
}

export class RefreshNode {
  readonly id: string;
  readonly leaseTtlMs: number;
  readonly heartbeatMs: number;
  private readonly tickMs: number;
  private readonly log: Logger;
  private readonly startedAt = Date.now();
  private pool: pg.Pool | undefined;
  private listener: pg.Client | undefined;
  private nc: NatsConnection | undefined;
  private kv: KV | undefined;
  private leaseStore: LeaseStore | undefined;
  private membership: Membership | undefined;
  private events: EventBus | undefined;
  private coordinator: Coordinator | undefined;
  private db = '';
  private readonly held = new Map<string, Held>();
  /** every lease in the bucket, kept by the watch */
  readonly leases = new LeaseTable();
  readonly members = new Map<string, Member>();
  private catalog = new Map<string, StreamTableRow>();
  private dag: Dag | undefined;
  private readonly queue = new DueQueue();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly stops: (() => void)[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private reconciling: Promise<void> = Promise.resolve();
  private reconcileAgain = false;
  private catalogLoading: Promise<void> | undefined;
  private catalogReread: Promise<void> | undefined;
  private ticking = false;
  /** the WARNING while the catalog version is not the one this node expects; no refreshes then */
  private catalogMismatch: string | undefined;
  private historyCleanedAt = 0;
  private stopping = false;
  private draining = false;
  /** migrations ran and the node joined: what /readyz reports */
  private ready = false;

  constructor(private readonly options: NodeOptions) {
    this.id = options.nodeId ?? nodeId(hostname(), process.pid, randomBytes(3).toString('hex'));
    // The id is a KV key token and a history column: letters, digits, '-' and '_' only.
    if (!/^[A-Za-z0-9_-]+$/.test(this.id)) {
      throw new PgTrickleError('CONFIG_INVALID', `node id ${JSON.stringify(this.id)} is not [A-Za-z0-9_-]+`);
    }
    this.leaseTtlMs = options.leaseTtlMs ?? DEFAULTS.leaseTtlMs;
    this.heartbeatMs = options.heartbeatMs ?? Math.max(50, Math.floor(this.leaseTtlMs / 3));
    this.tickMs = options.tickMs ?? DEFAULTS.tickMs;
    this.log = options.logger.child({ node: this.id });
  }

  /** Waits out recovery mode, migrates, joins NATS and starts working. */
  async start(): Promise<void> {
    const pool = new pg.Pool({
      connectionString: this.options.databaseUrl,
      max: this.options.poolSize ?? DEFAULTS.poolSize,
      application_name: `pgtrickle node ${this.id}`,
    });
    // An idle client's error (server restart) must not kill the process: the next query reconnects.
    pool.on('error', (err) => this.log.warn({ err }, 'database connection lost'));
    this.pool = pool;
    this.options.metrics?.attach({
      pool,
      heldStreamTables: () => [...this.held.values()].map((h) => `${h.row.schema}.${h.row.name}`),
      ready: () => this.ready,
    });
    await this.waitForPrimary(pool);
    if (this.stopping) return;
    await this.prepareCatalog(pool);
    if (this.stopping) return;
    this.db = (await pool.query<{ db: string }>('SELECT current_database() AS db')).rows[0]?.db ?? '';
    await this.register(true);

    this.nc = await connect({ servers: [...this.options.natsUrls], name: `pgtrickle ${this.id}` });
    this.kv = await openBucket(this.nc, bucketName(this.db), {
      maxAgeMs: Math.max(60_000, 10 * this.leaseTtlMs),
      replicas: kvReplicas(this.options.kvReplicas),
    });
    this.leaseStore = new NatsLeaseStore(this.kv);
    this.membership = new NatsMembership(this.kv);
    this.events = new NatsEventBus(this.nc);

    await this.loadCatalog();
    const pooler = poolerBehaviour(this.options.connectionPoolerMode ?? 'session');
    if (pooler.listen) await this.listen();
    // The first requests to a NATS cluster still busy with the bucket's RAFT group may go
    // unanswered for a while: retried rather than ending the node (untilAnswered).
    const membership = this.membership;
    const leaseStore = this.leaseStore;
    await untilAnswered(() => this.heartbeat(), NATS_START_TIMEOUT_MS);
    this.stops.push(
      await untilAnswered(
        () =>
          membership.watch((node, member) => {
            if (member === undefined) this.members.delete(node);
            else this.members.set(node, member);
            this.coordinator?.poke();
          }),
        NATS_START_TIMEOUT_MS,
      ),
    );
    this.stops.push(
      await untilAnswered(
        () =>
          leaseStore.watch(leaseKey('>'), (key, lease, revision) => {
            this.leases.apply(key.slice(leaseKey('').length), lease, revision);
            // Also when this node's own write had already brought that revision: a coordinator
            // that moved a table away from itself learns here that its actor must let it go.
            this.coordinator?.poke();
            this.reconcile();
          }),
        NATS_START_TIMEOUT_MS,
      ),
    );
    const coordinator = new Coordinator({
      node: this.id,
      leaseStore: this.leaseStore,
      leases: this.leases,
      pool,
      log: this.log,
      leaseTtlMs: this.leaseTtlMs,
      grantedToSelf: () => this.reconcile(),
      // The watches deliver what the bucket holds shortly after they start; a coordinator that
      // decided before would take every lease for missing and regrant it.
      notBefore: Date.now() + this.heartbeatMs,
      view: () => ({
        streamTables: this.dag?.order ?? [],
        members: this.members,
        catalogLoaded: this.dag !== undefined,
      }),
    });
    this.coordinator = coordinator;
    this.stops.push(
      await untilAnswered(
        () =>
          leaseStore.watch(COORDINATOR_KEY, (_key, term, revision) => coordinator.observe(term, revision)),
        NATS_START_TIMEOUT_MS,
      ),
    );
    this.every(this.heartbeatMs, () => this.heartbeat());
    this.every(this.options.catalogRefreshMs ?? pooler.catalogRefreshMs, () => this.loadCatalog());
    this.every(this.options.upkeepMs ?? DEFAULTS.upkeepMs, () => this.upkeep());
    this.scheduleTick();
    this.ready = true;
    this.log.info(
      {
        leaseTtlMs: this.leaseTtlMs,
        heartbeatMs: this.heartbeatMs,
        connectionPoolerMode: this.options.connectionPoolerMode ?? 'session',
      },
      'pgtrickle node started',
    );
  }

  /** Hands every stream table over at once and leaves the cluster (SIGTERM). */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.draining = true;
    this.ready = false;
    for (const t of this.timers) clearInterval(t);
    this.log.info({ held: this.held.size }, 'pgtrickle node stopping: handing stream tables over');
    try {
      await this.coordinator?.resign();
      // Draining first: a coordinator elsewhere stops placing tables here and regrants ours.
      await this.heartbeat().catch(() => undefined);
      for (const held of this.held.values()) {
        held.leaving = true;
        held.actor.send({ type: 'STOP' });
      }
      // A refresh under way commits or rolls back on its own; waiting lets it finish cleanly.
      await Promise.race([Promise.allSettled([...this.inFlight]), sleep(this.leaseTtlMs)]);
      await Promise.all(
        [...this.held.values()].map((h) =>
          this.leaseStore?.remove(leaseKey(h.id), this.leases.get(h.id)?.revision ?? h.lease.revision),
        ),
      ).catch((err) => this.log.warn({ err }, 'could not release every lease'));
      this.held.clear();
      await this.membership?.leave(this.id).catch(() => undefined);
    } finally {
      for (const stop of this.stops) stop();
      await this.nc?.drain().catch(() => undefined);
      await this.listener?.end().catch(() => undefined);
      await this.pool?.end().catch(() => undefined);
      this.log.info('pgtrickle node stopped');
    }
  }

  /** Stream tables this node runs now, by id: for tests and status. */
  heldIds(): string[] {
    return [...this.held.keys()];
  }

  isCoordinator(): boolean {
    return this.coordinator?.isLeader() ?? false;
  }

  private async waitForPrimary(pool: pg.Pool): Promise<void> {
    for (;;) {
      const { rows } = await pool.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      if (!rows[0]?.r || this.stopping) return;
      this.log.warn('pgtrickle node skipped: server is in recovery mode');
      await sleep(this.options.recoveryPollMs ?? DEFAULTS.recoveryPollMs);
    }
  }

  // Migrates when allowed; otherwise, or when the catalog is newer than this node, warns with both
  // versions and waits without refreshing anything until they agree.
  private async prepareCatalog(pool: pg.Pool): Promise<void> {
    const expected = expectedCatalogVersion();
    let warned = '';
    while (!this.stopping) {
      let current = await catalogFit(pool, expected);
      if (current.kind === 'behind' && this.options.migrate !== false) {
        const client = await pool.connect();
        try {
          await migrate(client, {
            onApplied: (m) => this.log.info({ version: m.version }, 'applied migration'),
          });
        } finally {
          client.release();
        }
        current = await catalogFit(pool, expected);
      }
      if (current.kind === 'current') {
        this.log.info({ version: current.version }, 'catalog ready');
        return;
      }
      const message = mismatchMessage(current, LIBRARY_VERSION);
      if (message !== warned) this.log.warn({ installed: current.installed, expected }, message);
      warned = message;
      await sleep(this.options.recoveryPollMs ?? DEFAULTS.recoveryPollMs);
    }
  }

  /** Records this node in pgt_nodes; the answer is the catalog version, checked on every call. */
  private async register(starting: boolean): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    const { rows } = await pool.query<{ v: string }>('SELECT pgtrickle._register_node($1, $2, $3) AS v', [
      this.id,
      LIBRARY_VERSION,
      starting,
    ]);
    const current = compareCatalog(Number(rows[0]?.v), expectedCatalogVersion());
    const mismatch = current.kind === 'current' ? undefined : mismatchMessage(current, LIBRARY_VERSION);
    if (mismatch !== undefined && mismatch !== this.catalogMismatch) this.log.warn(mismatch);
    if (mismatch === undefined && this.catalogMismatch !== undefined)
      this.log.info('catalog version agrees again');
    this.catalogMismatch = mismatch;
  }

  // The fingerprint check finds DDL that no event trigger reported (managed PostgreSQL); a marked
  // stream table is then reloaded and reinitialized by its actor. History is trimmed daily.
  private async upkeep(): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    await this.register(false);
    if (this.catalogMismatch !== undefined) return;
    const { rows } = await pool.query<{ stream_table: string; reason: string }>(
      'SELECT stream_table, reason FROM pgtrickle._check_ddl()',
    );
    for (const r of rows)
      this.log.warn({ st: r.stream_table }, `stream table marked for reinit: ${r.reason}`);
    if (rows.length > 0) await this.loadCatalog();
    if (Date.now() - this.historyCleanedAt >= DEFAULTS.historyCleanupMs) {
      const { rows: cleaned } = await pool.query<{ n: string }>('SELECT pgtrickle.cleanup_history() AS n');
      this.historyCleanedAt = Date.now();
      this.log.info({ rows: Number(cleaned[0]?.n ?? 0) }, 'refresh history trimmed');
    }
  }

  private every(ms: number, fn: () => Promise<void>): void {
    let busy = false;
    this.timers.push(
      setInterval(() => {
        if (busy || this.stopping) return;
        busy = true;
        fn()
          .catch((err) => this.log.error({ err }, 'background work failed'))
          .finally(() => {
            busy = false;
          });
      }, ms),
    );
  }

  private async heartbeat(): Promise<void> {
    const now = Date.now();
    await this.membership?.heartbeat({
      node: this.id,
      host: hostname(),
      pid: process.pid,
      startedAt: this.startedAt,
      expiresAt: now + this.leaseTtlMs,
      draining: this.draining,
    });
    if (this.stopping) return;
    await this.renewLeases(now);
    await this.coordinator?.round();
  }

  // A lease is renewed when half its time is gone; a lost compare-and-set means the coordinator
  // regranted it, and the watch brings the new holder, or that what this node believed of the key
  // is behind in a way the watch will not correct (a superseded write): the key is read again.
  private async renewLeases(now: number): Promise<void> {
    const store = this.leaseStore;
    if (!store) return;
    await Promise.all(
      [...this.held.values()].map(async (held) => {
        const current = this.leases.get(held.id) ?? held.lease;
        if (current.holder !== this.id || current.epoch !== held.lease.epoch) return;
        if (current.expiresAt - now > this.leaseTtlMs / 2) return;
        const renewed = await store.write(
          leaseKey(held.id),
          { holder: this.id, epoch: current.epoch, expiresAt: now + this.leaseTtlMs },
          current.revision,
        );
        if (renewed === undefined) {
          this.log.warn({ st: held.row.qualifiedName, epoch: current.epoch }, 'lease renewal lost the race');
          const found = await store.current(leaseKey(held.id));
          this.leases.settle(held.id, found.lease, found.revision);
          this.reconcile();
          return;
        }
        held.lease = renewed;
        this.leases.apply(held.id, renewed, renewed.revision);
      }),
    );
  }

  // A request while a read runs (a pg_trickle_catalog notification) may come from a commit that
  // read's snapshot missed: one more read follows it, shared by every request meanwhile.
  private loadCatalog(): Promise<void> {
    if (this.catalogLoading === undefined) return this.readCatalog();
    this.catalogReread ??= this.catalogLoading
      .catch(() => undefined)
      .then(() => {
        this.catalogReread = undefined;
        return this.loadCatalog();
      });
    return this.catalogReread;
  }

  private readCatalog(): Promise<void> {
    this.catalogLoading = (async () => {
      const pool = this.pool;
      if (!pool) return;
      const rows = await readStreamTables(pool);
      const now = Date.now();
      const nodes = rows.map((r) => ({
        id: r.id,
        sources: r.sources,
        tables: r.tables,
        schedule: parseSchedule(r.schedule),
      }));
      let dag: Dag;
      try {
        dag = buildDag(nodes, { now });
      } catch (err) {
        // The SQL API refuses cycles; a catalog that has one anyway keeps the last good DAG.
        this.log.error({ err }, 'catalog DAG rejected');
        return;
      }
      const previous = this.catalog;
      this.catalog = new Map(rows.map((r) => [r.id, r]));
      this.dag = dag;
      for (const held of this.held.values()) {
        const row = this.catalog.get(held.id);
        if (row === undefined) {
          held.leaving = true;
          held.actor.send({ type: 'STOP' });
          continue;
        }
        const before = previous.get(held.id);
        held.row = row;
        const snapshot = held.actor.getSnapshot();
        const facts = this.facts(row, snapshot.value === 'reinit');
        // A rebuild is compared with what the actor knows, not with the previous read: its own
        // reinit clears the flag between two reads, so a mark after it (a source's plan changed
        // its columns) would read as no change, and the table would refresh without a plan
        // until a takeover rebuilt it, holding the diamond's group and its readers up then.
        if (
          before?.schedule !== row.schedule ||
          before?.status !== row.status ||
          facts.needsReinit !== snapshot.context.needsReinit
        ) {
          held.actor.send({ type: 'CATALOG_CHANGED', facts });
        }
      }
      this.coordinator?.poke();
    })().finally(() => {
      this.catalogLoading = undefined;
    });
    return this.catalogLoading;
  }

  // A reinit under way serves a flag read before it commits; a mark after its commit waited for
  // its row lock, and a later read shows it.
  private facts(row: StreamTableRow, reinitRunning = false) {
    return {
      name: row.qualifiedName,
      schedule: this.dag?.schedules.has(row.id)
        ? scheduleOf(this.dag, row.id)
        : { kind: 'interval' as const, ms: 60_000 },
      status: row.status,
      needsReinit: row.needsReinit && !reinitRunning,
    };
  }

  // LISTEN needs a session of its own: skipped behind a transaction-mode pooler (pooler.ts).
  private async listen(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.databaseUrl,
      application_name: `pgtrickle node ${this.id} listener`,
    });
    client.on('error', (err) => this.log.warn({ err }, 'notification connection lost'));
    client.on('notification', (msg) => {
      if (msg.channel === 'pg_trickle_catalog') {
        void this.loadCatalog().catch((err) => this.log.error({ err }, 'catalog reload failed'));
        return;
      }
      if (msg.channel !== 'pg_trickle_refresh' || !msg.payload || !this.dag) return;
      let id: string;
      try {
        id = String((JSON.parse(msg.payload) as { pgt_id: number }).pgt_id);
      } catch {
        return;
      }
      for (const reader of this.dag.readers.get(id) ?? []) {
        this.held.get(reader)?.actor.send({ type: 'UPSTREAM_REFRESHED' });
      }
    });
    await client.connect();
    await client.query('LISTEN pg_trickle_catalog');
    await client.query('LISTEN pg_trickle_refresh');
    this.listener = client;
  }

  /** Brings the actors in line with the leases held by this node; runs one at a time. */
  private reconcile(): void {
    if (this.stopping) return;
    this.reconcileAgain = true;
    this.reconciling = this.reconciling.then(async () => {
      // Grants come in bursts (a takeover hands a dead node's share out at once): the rest of
      // the burst lands first, and one catalog read serves them all.
      await new Promise((resolve) => setImmediate(resolve));
      if (!this.reconcileAgain || this.stopping) return;
      this.reconcileAgain = false;
      try {
        await this.reconcileOnce();
      } catch (err) {
        this.log.error({ err }, 'lease reconciliation failed');
      }
    });
  }

  private async reconcileOnce(): Promise<void> {
    const now = Date.now();
    for (const held of [...this.held.values()]) {
      const lease = this.leases.get(held.id);
      if (lease === undefined || lease.holder !== this.id || lease.epoch !== held.lease.epoch) {
        this.log.info({ st: held.row.qualifiedName, epoch: held.lease.epoch }, 'lease lost');
        held.actor.send({ type: 'LEASE_LOST' });
      }
    }
    const pool = this.pool;
    if (!pool || this.draining) return;
    const granted = new Map<string, Lease>();
    for (const lease of this.leases.values()) {
      const id = lease.key.slice(leaseKey('').length);
      if (lease.holder === this.id && !isExpired(lease, now) && !this.held.has(id)) granted.set(id, lease);
    }
    // One query for every lease just granted: a takeover brings a dead node's share at once.
    const stale: Lease[] = [];
    for (const row of await readStreamTablesById(pool, [...granted.keys()])) {
      const lease = granted.get(row.id) as Lease;
      if (this.stopping || this.held.has(row.id)) continue;
      if (row.epoch === lease.epoch) this.take(row, lease);
      else if (row.epoch > lease.epoch) stale.push(lease);
    }
    if (stale.length > 0) this.giveBackLater(stale);
  }

  // The catalog holds a newer epoch than a lease granted to this node. The newer grant's lease
  // write is usually a few ms behind its epoch, committed first; but it may never come: two
  // coordinators granted the table at once and the write of the older epoch landed last
  // (leases.ts), or the coordinator died between its statement and its writes. Then the lease
  // names this node until it expires and nobody refreshes the table meanwhile, so a lease still
  // unchanged a tick later is given back, and the coordinator regrants it at once.
  private giveBackLater(stale: readonly Lease[]): void {
    const timer = setTimeout(() => {
      for (const lease of stale) {
        const id = lease.key.slice(leaseKey('').length);
        if (this.stopping || this.held.has(id) || this.leases.get(id)?.revision !== lease.revision) continue;
        this.log.info({ st: id, epoch: lease.epoch }, 'lease of a superseded epoch given back');
        void this.leaseStore
          ?.remove(lease.key, lease.revision)
          .catch((err) => this.log.warn({ err, st: id }, 'could not give a lease back'));
      }
    }, this.tickMs);
    timer.unref();
  }

  private take(row: StreamTableRow, lease: Lease): void {
    const pool = this.pool as pg.Pool;
    const machine = withWork(
      refreshRunners(
        pool,
        this.id,
        (work) => {
          this.inFlight.add(work);
          void work.finally(() => this.inFlight.delete(work)).catch(() => undefined);
          return work;
        },
        {
          groupOf: (id) => (this.dag === undefined ? undefined : diamondGroup(this.dag, id)),
          memberRefreshed: (id, result) => this.memberRefreshed(id, result),
          groupSkipped: (id, err) =>
            this.log.debug(
              { st: this.catalog.get(id)?.qualifiedName, err: errorFacts(err) },
              'diamond group skipped',
            ),
        },
        // Half the TTL: a node paused that long in the middle of a reinit is about to lose its
        // leases, and the table's grant waits for the reinit's row lock.
        this.leaseTtlMs / 2,
      ),
    );
    const input: StreamTableInput = {
      ...this.facts(row),
      id: row.id,
      epoch: lease.epoch,
      populated: row.populated,
      lastRefreshAt: row.lastRefreshAt,
      consecutiveFailures: row.consecutiveErrors,
      // Whatever the previous holder left unconsumed is refreshed as soon as it is due, without
      // waiting for a tick's source check: a takeover refreshes at once, and a refresh that
      // finds nothing new is cheap and harmless (I1, I2).
      workPending: true,
      now: Date.now,
    };
    const actor = createActor(machine, { input });
    const held: Held = { id: row.id, actor, lease, row, status: null, leaving: false };
    this.held.set(row.id, held);
    actor.on('refreshed', (e) => this.refreshed(held.row, held.lease.epoch, e.result));
    actor.on('failed', (e) => {
      const error = errorFacts(e.error);
      this.log.warn(
        { st: held.row.qualifiedName, epoch: held.lease.epoch, work: e.work, err: error },
        'refresh failed',
      );
      this.options.metrics?.failed(`${held.row.schema}.${held.row.name}`, e.work);
      this.publish({
        ...this.eventBase(held),
        type: 'failed',
        work: e.work,
        error,
        consecutive_failures: e.consecutiveFailures,
      });
      const action =
        e.work === 'reinit'
          ? 'REINITIALIZE'
          : held.row.effectiveMode === 'DIFFERENTIAL'
            ? 'DIFFERENTIAL'
            : 'FULL';
      void pool
        .query('SELECT pgtrickle._record_failure($1, $2, $3, $4, $5, $6)', [
          held.id,
          held.lease.epoch,
          this.id,
          action,
          error.message,
          new Date(held.actor.getSnapshot().context.startedAt ?? Date.now()),
        ])
        .catch((err) => this.log.warn({ err }, 'could not record the failure'));
    });
    actor.subscribe((snapshot) => {
      const state = String(snapshot.value);
      const status = actorStatus(state);
      if (status !== held.status) {
        if (status === 'BACKOFF') this.options.metrics?.backoff(`${held.row.schema}.${held.row.name}`);
        this.publish({ ...this.eventBase(held), type: 'status', status, previous: held.status });
        held.status = status;
      }
      if (snapshot.status === 'done') {
        this.release(held, state);
        return;
      }
      if (state === 'idle') this.queue.schedule(held.id, dueAt(snapshot.context, Date.now()));
    });
    this.log.info({ st: row.qualifiedName, id: row.id, epoch: lease.epoch }, 'stream table taken');
    actor.start();
  }

  private release(held: Held, state: string): void {
    this.queue.remove(held.id);
    if (this.held.get(held.id) === held) this.held.delete(held.id);
    if (held.leaving || this.stopping) return;
    // Fenced out (PT001) or told the lease moved: if the lease still names this node, it gives
    // it up so the coordinator regrants at once instead of after the TTL.
    this.log.info({ st: held.row.qualifiedName, epoch: held.lease.epoch, state }, 'stream table given up');
    const lease = this.leases.get(held.id);
    if (lease !== undefined && lease.holder === this.id && lease.epoch === held.lease.epoch) {
      void this.leaseStore?.remove(leaseKey(held.id), lease.revision).catch(() => undefined);
    }
    // A newer lease for this node may be waiting behind the one just given up.
    this.reconcile();
  }

  private eventBase(held: Held) {
    return this.eventBaseOf(held.row, held.lease.epoch);
  }

  private eventBaseOf(row: StreamTableRow, epoch: number) {
    return {
      v: 1 as const,
      db: this.db,
      schema: row.schema,
      name: row.name,
      pgt_id: row.id,
      node: this.id,
      epoch,
      at: Date.now(),
    };
  }

  private refreshed(row: StreamTableRow, epoch: number, result: RefreshResult): void {
    if (result.action === 'SKIPPED') return;
    this.options.metrics?.refreshed(`${row.schema}.${row.name}`, result);
    this.publish({
      ...this.eventBaseOf(row, epoch),
      type: 'refreshed',
      action: result.action,
      refresh_id: result.refreshId ?? '',
      rows_inserted: result.rowsInserted,
      rows_deleted: result.rowsDeleted,
      changes_consumed: result.changesConsumed ?? null,
      duration_ms: result.durationMs,
      frontier: result.frontier ?? '',
    });
  }

  // A diamond join's group refreshed an upstream member without its lease: epoch 0 says so
  // (docs/EVENTS.md).
  private memberRefreshed(id: string, result: RefreshResult): void {
    const row = this.catalog.get(id);
    if (row !== undefined) this.refreshed(row, 0, result);
  }

  private publish(event: ClusterEvent): void {
    try {
      this.events?.publish(event);
    } catch (err) {
      this.log.warn({ err, st: `${event.schema}.${event.name}` }, 'could not publish an event');
    }
  }

  private scheduleTick(): void {
    const timer = setTimeout(() => {
      const started = performance.now();
      void this.tick()
        .catch((err) => this.log.error({ err }, 'scheduler tick failed'))
        .finally(() => {
          this.options.metrics?.tick(performance.now() - started);
          if (!this.stopping) this.scheduleTick();
        });
    }, this.tickMs);
    this.timers.push(timer);
  }

  // Work proportional to what is due: the queue hands out the due and the parked ids, one query
  // tells which of them have changes, and only those actors hear about it.
  private async tick(): Promise<void> {
    if (this.ticking || this.stopping || !this.pool || this.catalogMismatch !== undefined) return;
    this.ticking = true;
    try {
      const due = this.queue.popDue(Date.now()).filter((id) => this.held.has(id));
      const ids = candidates(this.queue, due);
      if (ids.length === 0) return;
      let pending: Set<string>;
      try {
        pending = await pendingChanges(this.pool, ids);
      } catch (err) {
        // Popped but not told: they stay due, for the next tick to ask again.
        for (const id of due) this.queue.park(id);
        throw err;
      }
      dispatch(this.queue, this.held, due, pending, Date.now);
    } finally {
      this.ticking = false;
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
