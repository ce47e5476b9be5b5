// The coordinator role, which every node runs and at most one holds at a time (a lease on the
// KV key `coordinator`): places stream tables on live nodes, grants their leases with a new
// fencing epoch from the catalog, and takes them back from nodes whose heartbeat stopped.
// Leases decide who schedules, never what is correct (I3): a wrong decision costs a refresh
// refused with PT001, not data.
import type pg from 'pg';
import type { Logger } from '../../shared/logger.js';
import {
  COORDINATOR_KEY,
  isAlive,
  isExpired,
  type Lease,
  type LeaseStore,
  leaseKey,
  type Member,
} from '../nats/index.js';
import type { LeaseTable } from './lease-table.js';
import { eligibleNodes, type Grant, type Lapses, place, suspectNodes } from './placement.js';

export interface CoordinatorView {
  /** catalog stream tables, upstream first */
  readonly streamTables: readonly string[];
  readonly members: ReadonlyMap<string, Member>;
  readonly catalogLoaded: boolean;
}

export interface CoordinatorOptions {
  readonly node: string;
  readonly leaseStore: LeaseStore;
  /** every stream-table lease, by pgt_id, kept current by the node's watch; grants go in at once */
  readonly leases: LeaseTable;
  readonly pool: pg.Pool;
  readonly log: Logger;
  readonly leaseTtlMs: number;
  /** no decision before this instant (epoch ms): the watches need a moment to fill the maps */
  readonly notBefore: number;
  readonly view: () => CoordinatorView;
  /** healthy leases moved per round to even the load out */
  readonly maxMoves?: number;
  /** lease writes in flight at once */
  readonly parallelGrants?: number;
  /** called when this node granted leases to itself: it need not wait for the watch to hear it */
  readonly grantedToSelf?: () => void;
}

/** First wait before a grant whose row a refresh holds is tried again; it doubles while busy. */
const BUSY_RETRY_MS = 10;

/**
 * How long the second live node (by id) waits after a vacant or expired term before it stands
 * for election, the third twice as long: time for the first one's read and write of the term.
 * On a replicated bucket two elections a few ms apart may both win (leases.ts), and two
 * coordinators grant the same table twice; the later term then deposes the earlier (observe),
 * but the grants of both have been made.
 */
const ELECTION_STAGGER_MS = 50;

export class Coordinator {
  private leader: Lease | undefined;
  private running: Promise<void> | undefined;
  private poked: NodeJS.Timeout | undefined;
  private again = false;
  private expiry: NodeJS.Timeout | undefined;
  private busyRetry: NodeJS.Timeout | undefined;
  private busyDelayMs = BUSY_RETRY_MS;
  private lapses: Lapses = new Map();
  private resigned = false;
  /** the latest term the watch of the coordinator key delivered */
  private observed: { holder: string | undefined; revision: number } = { holder: undefined, revision: 0 };
  /** when this node first found the role vacant (no term at all), for the election's stagger */
  private vacantSince: number | undefined;

  constructor(private readonly options: CoordinatorOptions) {}

  isLeader(): boolean {
    return this.leader !== undefined && !isExpired(this.leader, Date.now());
  }

  /** Something changed (a lease, a member, the catalog): a leader decides again soon. */
  poke(): void {
    if (!this.isLeader() || this.poked || this.resigned) return;
    this.poked = setTimeout(() => {
      this.poked = undefined;
      this.roundNow();
    }, 20);
  }

  /**
   * The watch of the coordinator key delivered `term` (undefined: resigned) at `revision`. A
   * later term of another node deposes this one at once, not at its next renewal: two nodes
   * that both won an election (ELECTION_STAGGER_MS) must not both keep granting.
   */
  observe(term: Lease | undefined, revision: number): void {
    if (revision <= this.observed.revision) return;
    this.observed = { holder: term?.holder, revision };
    const leader = this.leader;
    if (leader === undefined || revision <= leader.revision || term?.holder === this.options.node) return;
    this.leader = undefined;
    this.options.log.info({ term: term?.epoch, by: term?.holder }, 'coordinator role lost');
    if (term !== undefined) this.alarmAt(term.expiresAt, Date.now(), () => this.roundNow());
  }

  /** Election, then placement when this node leads; one round at a time. */
  round(): Promise<void> {
    if (this.running) {
      // Asked while deciding: what it was asked about may have come too late for this round.
      this.again = true;
      return this.running;
    }
    this.running = this.roundOnce().finally(() => {
      this.running = undefined;
      // At once, not after poke's pause: the request may be an expiry alarm (a dead node's, or
      // the coordinator's term), which must not wait.
      if (this.again) {
        this.again = false;
        this.roundNow();
      }
    });
    return this.running;
  }

  private roundNow(): void {
    if (this.resigned) return;
    void this.round().catch((err) => this.options.log.error({ err }, 'coordinator round failed'));
  }

  /** One alarm at a time: a follower's is the coordinator's term, a leader's a member's expiry. */
  private alarmAt(at: number, now: number, fire: () => void): void {
    clearTimeout(this.expiry);
    this.expiry = setTimeout(fire, at - now + 1);
    this.expiry.unref();
  }

  /** Gives the role up so another node takes it at its next heartbeat. */
  async resign(): Promise<void> {
    this.resigned = true;
    clearTimeout(this.poked);
    clearTimeout(this.expiry);
    clearTimeout(this.busyRetry);
    await this.running?.catch(() => undefined);
    const leader = this.leader;
    this.leader = undefined;
    if (leader) await this.options.leaseStore.remove(COORDINATOR_KEY, leader.revision).catch(() => false);
  }

  // A leader renews its term like a lease, once half of it is gone, rather than on every round
  // (rounds come with every lease and member change), and after its decisions, not before: a
  // takeover's grants do not wait for two KV round trips.
  private async roundOnce(): Promise<void> {
    const now = Date.now();
    if (this.resigned || now < this.options.notBefore) return;
    if (!this.isLeader()) await this.elect(now);
    if (!this.isLeader()) return;
    try {
      await this.coordinate(Date.now());
    } finally {
      const term = this.leader;
      if (term !== undefined && term.expiresAt - Date.now() <= this.options.leaseTtlMs / 2) {
        await this.elect(Date.now());
      }
    }
  }

  private async elect(now: number): Promise<void> {
    const { leaseStore, node, leaseTtlMs, log } = this.options;
    const current = await leaseStore.read(COORDINATOR_KEY);
    const wasLeader = this.isLeader();
    if (current !== undefined && current.holder !== node && !isExpired(current, now)) {
      this.leader = undefined;
      this.vacantSince = undefined;
      // Stand for election the instant the coordinator's term runs out, not a heartbeat later:
      // a dead coordinator's tables wait for both.
      this.alarmAt(current.expiresAt + this.electionDelay(current.holder), now, () => this.roundNow());
    } else {
      if (current === undefined) this.vacantSince ??= now;
      else this.vacantSince = undefined;
      const standAt =
        current === undefined || current.holder !== node
          ? (current?.expiresAt ?? this.vacantSince ?? now) + this.electionDelay(current?.holder)
          : now;
      if (standAt > now) {
        this.leader = undefined;
        this.alarmAt(standAt, now, () => this.roundNow());
        return;
      }
      const epoch =
        current === undefined || current.holder !== node ? (current?.epoch ?? 0) + 1 : current.epoch;
      const term = await leaseStore.write(
        COORDINATOR_KEY,
        { holder: node, epoch, expiresAt: now + leaseTtlMs },
        current?.revision ?? 0,
      );
      // The watch may already have delivered a later term of another node.
      const deposed =
        term !== undefined && this.observed.revision > term.revision && this.observed.holder !== node;
      this.leader = deposed ? undefined : term;
      if (term !== undefined) this.vacantSince = undefined;
    }
    if (this.isLeader() !== wasLeader) {
      log.info(
        { term: this.leader?.epoch ?? current?.epoch },
        this.isLeader() ? 'coordinator elected' : 'coordinator role lost',
      );
    }
  }

  // This node's place among the live nodes but the previous coordinator, by id, times the stagger.
  private electionDelay(previous: string | undefined): number {
    const { members } = this.options.view();
    const now = Date.now();
    const rivals = [...members.values()]
      .filter((m) => isAlive(m, now) && m.node !== previous)
      .map((m) => m.node)
      .sort();
    return Math.max(0, rivals.indexOf(this.options.node)) * ELECTION_STAGGER_MS;
  }

  // A dead node is noticed the instant its first lease or its heartbeat entry expires, not at the
  // next round up to a heartbeat later: takeover then takes at most the lease TTL plus a tick.
  // Every round re-arms it; the living renew before they expire, so it fires for the dead.
  private wakeAtNextExpiry(members: ReadonlyMap<string, Member>, now: number): void {
    let at = Number.POSITIVE_INFINITY;
    for (const m of members.values()) if (m.expiresAt > now && m.expiresAt < at) at = m.expiresAt;
    for (const l of this.options.leases.values()) if (l.expiresAt > now && l.expiresAt < at) at = l.expiresAt;
    if (Number.isFinite(at)) this.alarmAt(at, now, () => this.roundNow());
    else clearTimeout(this.expiry);
  }

  private async coordinate(now: number): Promise<void> {
    const { leases, leaseStore, log, pool } = this.options;
    const view = this.options.view();
    if (!view.catalogLoaded) return;
    const alive = new Set([...view.members.values()].filter((m) => isAlive(m, now)).map((m) => m.node));
    const inCatalog = new Set(view.streamTables);
    const holders = new Map<string, string>();
    const expiredHolders: string[] = [];
    for (const [id, lease] of leases) {
      if (!inCatalog.has(id)) continue;
      if (isExpired(lease, now)) expiredHolders.push(lease.holder);
      else if (alive.has(lease.holder)) holders.set(id, lease.holder);
    }
    const suspicion = suspectNodes(this.lapses, expiredHolders, view.members);
    this.lapses = suspicion.lapses;
    this.wakeAtNextExpiry(view.members, now);
    const grants = place({
      streamTables: view.streamTables,
      nodes: eligibleNodes([...alive].sort(), suspicion.suspects),
      holders,
      maxMoves: this.options.maxMoves ?? 2,
    });
    let busy: string[] = [];
    if (grants.length > 0) {
      // The epochs first, all in one statement: once they are in the catalog, the previous
      // holders cannot commit (I3).
      const epochs = await grantEpochs(
        pool,
        grants.map((g) => g.id),
      );
      const { granted } = epochs;
      busy = epochs.busy;
      const parallel = this.options.parallelGrants ?? 256;
      const ready = grants.filter((g) => granted.has(g.id));
      for (let i = 0; i < ready.length; i += parallel) {
        await Promise.all(
          ready
            .slice(i, i + parallel)
            .map((grant) => this.writeLease(grant, granted.get(grant.id) as number)),
        );
      }
      if (ready.some((g) => g.to === this.options.node)) this.options.grantedToSelf?.();
      if (busy.length > 0) log.info({ st: busy }, 'lease grants wait for refreshes in progress');
    }
    this.retryBusy(busy.length > 0);
    // Leases of dropped stream tables.
    for (const [id, lease] of leases) {
      if (!inCatalog.has(id)) await leaseStore.remove(leaseKey(id), lease.revision).catch(() => false);
    }
  }

  private async writeLease(grant: Grant, epoch: number): Promise<void> {
    const { leases, leaseStore, leaseTtlMs, log } = this.options;
    const previous = leases.get(grant.id);
    const lease = await leaseStore.write(
      leaseKey(grant.id),
      { holder: grant.to, epoch, expiresAt: Date.now() + leaseTtlMs },
      previous?.revision ?? 0,
    );
    if (lease === undefined) {
      // What this node believed of the key is behind, and the watch may never correct it (a
      // write superseded before it was delivered): without a fresh read, every round would
      // try the same stale revision again, and the table would never move.
      const now = await leaseStore.current(leaseKey(grant.id));
      leases.settle(grant.id, now.lease, now.revision);
      log.debug(
        { st: grant.id, tried: previous?.revision ?? 0, found: now.revision },
        'lease grant lost the race; the next round retries',
      );
      this.poke();
      return;
    }
    leases.apply(grant.id, lease, lease.revision);
    log.info({ st: grant.id, to: grant.to, from: grant.from, epoch }, 'lease granted');
  }

  // The refresh in the way is usually a dead node's last one, about to end: try again soon, not a
  // round later; but a node paused in the middle of a transaction holds its lock until it runs
  // again, so the retries slow down (to a sixth of the TTL) while the row stays busy.
  private retryBusy(busy: boolean): void {
    clearTimeout(this.busyRetry);
    if (!busy) {
      this.busyDelayMs = BUSY_RETRY_MS;
      return;
    }
    this.busyRetry = setTimeout(() => this.roundNow(), this.busyDelayMs);
    this.busyRetry.unref();
    this.busyDelayMs = Math.min(2 * this.busyDelayMs, Math.max(BUSY_RETRY_MS, this.options.leaseTtlMs / 6));
  }
}

// Rows a refresh holds (FOR UPDATE NOWAIT in _refresh, I1) are skipped, not waited for: the
// lock may belong to an orphaned backend of a dead node, held until its refresh ends or, if its
// host vanished mid-transaction, until TCP keepalive tells PostgreSQL; a round that waited would
// hold up every other grant and this node's heartbeat. Ids gone from the catalog come back in
// neither list. One statement, so nothing is left in a pooled session.
const GRANT_SQL = `
  WITH free AS MATERIALIZED (
    SELECT pgt_id FROM pgtrickle.pgt_stream_tables
     WHERE pgt_id = ANY ($1::bigint[])
       FOR UPDATE SKIP LOCKED),
  granted AS MATERIALIZED (
    SELECT pgt_id, pgtrickle._grant_epoch(pgt_id) AS epoch FROM free)
  SELECT st.pgt_id::text AS id, g.epoch::text AS epoch
    FROM pgtrickle.pgt_stream_tables st LEFT JOIN granted g USING (pgt_id)
   WHERE st.pgt_id = ANY ($1::bigint[])`;

/** Bumps the fencing epochs of `ids` whose rows no refresh holds; `busy` are the others. */
async function grantEpochs(
  pool: pg.Pool,
  ids: readonly string[],
): Promise<{ granted: Map<string, number>; busy: string[] }> {
  const { rows } = await pool.query<{ id: string; epoch: string | null }>(GRANT_SQL, [ids]);
  const granted = new Map<string, number>();
  const busy: string[] = [];
  for (const r of rows) {
    if (r.epoch === null) busy.push(r.id);
    else granted.set(r.id, Number(r.epoch));
  }
  return { granted, busy };
}
