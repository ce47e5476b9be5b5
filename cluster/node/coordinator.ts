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
import { place } from './placement.js';

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
  readonly leases: Map<string, Lease>;
  readonly pool: pg.Pool;
  readonly log: Logger;
  readonly leaseTtlMs: number;
  /** no decision before this instant (epoch ms): the watches need a moment to fill the maps */
  readonly notBefore: number;
  readonly view: () => CoordinatorView;
  /** healthy leases moved per round to even the load out */
  readonly maxMoves?: number;
  /** grants written at once */
  readonly parallelGrants?: number;
  /** longest wait of a grant for a stream table's row lock (default: a sixth of the TTL) */
  readonly grantLockTimeoutMs?: number;
}

export class Coordinator {
  private leader: Lease | undefined;
  private running: Promise<void> | undefined;
  private poked: NodeJS.Timeout | undefined;
  private again = false;
  private expiry: NodeJS.Timeout | undefined;
  private resigned = false;

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

  /** Election, then placement when this node leads; one round at a time. */
  round(): Promise<void> {
    if (this.running) {
      // Asked while deciding: what it was asked about may have come too late for this round.
      this.again = true;
      return this.running;
    }
    this.running = this.roundOnce().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.poke();
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
    await this.running?.catch(() => undefined);
    const leader = this.leader;
    this.leader = undefined;
    if (leader) await this.options.leaseStore.remove(COORDINATOR_KEY, leader.revision).catch(() => false);
  }

  private async roundOnce(): Promise<void> {
    const now = Date.now();
    if (this.resigned || now < this.options.notBefore) return;
    await this.elect(now);
    if (this.isLeader()) await this.coordinate(now);
  }

  private async elect(now: number): Promise<void> {
    const { leaseStore, node, leaseTtlMs, log } = this.options;
    const current = await leaseStore.read(COORDINATOR_KEY);
    const wasLeader = this.isLeader();
    if (current !== undefined && current.holder !== node && !isExpired(current, now)) {
      this.leader = undefined;
      // Stand for election the instant the coordinator's term runs out, not a heartbeat later:
      // a dead coordinator's tables wait for both.
      this.alarmAt(current.expiresAt, now, () => this.roundNow());
    } else {
      const epoch =
        current === undefined || current.holder !== node ? (current?.epoch ?? 0) + 1 : current.epoch;
      this.leader = await leaseStore.write(
        COORDINATOR_KEY,
        { holder: node, epoch, expiresAt: now + leaseTtlMs },
        current?.revision ?? 0,
      );
    }
    if (this.isLeader() !== wasLeader) {
      log.info(
        { term: this.leader?.epoch ?? current?.epoch },
        this.isLeader() ? 'coordinator elected' : 'coordinator role lost',
      );
    }
  }

  // A member that stops heartbeating is noticed the instant its entry expires, not at the next
  // round up to a heartbeat later: takeover then takes the lease TTL plus a tick, not plus a round.
  // Every round re-arms it, and the living heartbeat before they expire, so it fires for the dead.
  private wakeAtNextExpiry(members: ReadonlyMap<string, Member>, now: number): void {
    let at = Number.POSITIVE_INFINITY;
    for (const m of members.values()) if (m.expiresAt > now && m.expiresAt < at) at = m.expiresAt;
    if (Number.isFinite(at)) this.alarmAt(at, now, () => this.poke());
    else clearTimeout(this.expiry);
  }

  private async coordinate(now: number): Promise<void> {
    const { leases, leaseStore, leaseTtlMs, log, pool } = this.options;
    const view = this.options.view();
    if (!view.catalogLoaded) return;
    const nodes = [...view.members.values()]
      .filter((m) => isAlive(m, now))
      .map((m) => m.node)
      .sort();
    const alive = new Set(nodes);
    const holders = new Map<string, string>();
    for (const [id, lease] of leases) {
      if (!isExpired(lease, now) && alive.has(lease.holder)) holders.set(id, lease.holder);
    }
    this.wakeAtNextExpiry(view.members, now);
    const grants = place({
      streamTables: view.streamTables,
      nodes,
      holders,
      maxMoves: this.options.maxMoves ?? 2,
    });
    const parallel = this.options.parallelGrants ?? 16;
    let busy = false;
    for (let i = 0; i < grants.length; i += parallel) {
      await Promise.all(
        grants.slice(i, i + parallel).map(async (grant) => {
          // The epoch first: once it is in the catalog, the previous holder cannot commit (I3).
          const epoch = await grantEpoch(
            pool,
            grant.id,
            this.options.grantLockTimeoutMs ?? Math.max(50, Math.floor(leaseTtlMs / 6)),
          );
          if (epoch === 'busy') {
            log.info({ st: grant.id, to: grant.to }, 'lease grant waits for a refresh in progress');
            busy = true;
            return;
          }
          if (epoch === null || epoch === undefined) return;
          const previous = leases.get(grant.id);
          const lease = await leaseStore.write(
            leaseKey(grant.id),
            { holder: grant.to, epoch: Number(epoch), expiresAt: Date.now() + leaseTtlMs },
            previous?.revision ?? 0,
          );
          if (lease === undefined) {
            log.debug({ st: grant.id }, 'lease grant lost the race; next round retries');
            return;
          }
          const seen = leases.get(grant.id);
          if (seen === undefined || seen.revision < lease.revision) leases.set(grant.id, lease);
          log.info({ st: grant.id, to: grant.to, from: grant.from, epoch: lease.epoch }, 'lease granted');
        }),
      );
    }
    // The refresh in the way is usually a dead node's last one, about to end: try again at once
    // rather than a round later.
    if (busy) this.poke();
    // Leases of dropped stream tables.
    const inCatalog = new Set(view.streamTables);
    for (const [id, lease] of leases) {
      if (!inCatalog.has(id)) await leaseStore.remove(leaseKey(id), lease.revision).catch(() => false);
    }
  }
}

/**
 * Bumps the fencing epoch, waiting at most `lockTimeoutMs` for the stream table's row lock.
 * The lock belongs to a refresh in progress, which may be an orphaned backend of a dead node:
 * it holds the lock as long as its refresh runs, or, if its host vanished mid-transaction,
 * until TCP keepalive tells PostgreSQL. A round that waited for it would hold up this node's
 * heartbeat and lease renewals (they run in the same loop), so a busy row is retried next round.
 * lock_timeout is set for this transaction only: nothing is left in a pooled session.
 */
async function grantEpoch(pool: pg.Pool, id: string, lockTimeoutMs: number): Promise<string | null | 'busy'> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('lock_timeout', $1, true)", [`${lockTimeoutMs}ms`]);
    const { rows } = await client.query<{ epoch: string | null }>(
      'SELECT pgtrickle._grant_epoch($1)::text AS epoch',
      [id],
    );
    await client.query('COMMIT');
    return rows[0]?.epoch ?? null;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    if ((err as { code?: unknown } | null)?.code === '55P03') return 'busy';
    throw err;
  } finally {
    client.release();
  }
}
