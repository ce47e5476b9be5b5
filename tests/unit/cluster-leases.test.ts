// What a node believes of the leases, and the coordinator's use of it, against an in-memory
// bucket: a write acknowledged after a later delete does not bring its lease back; a grant that
// lost its compare-and-set reads the key again instead of retrying a stale revision forever;
// a later term deposes a coordinator at once; a second node waits its turn to stand.
import type pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import {
  COORDINATOR_KEY,
  type Lease,
  type LeaseState,
  type LeaseStore,
  type LeaseTerms,
  leaseKey,
  type Member,
} from '../../cluster/nats/index.js';
import { Coordinator } from '../../cluster/node/coordinator.js';
import { LeaseTable } from '../../cluster/node/lease-table.js';
import { createLogger } from '../../shared/logger.js';

/** A bucket with a compare-and-set that holds, as on one NATS server. */
class MemoryLeaseStore implements LeaseStore {
  readonly keys = new Map<string, LeaseState>();
  revision = 0;

  async read(key: string): Promise<Lease | undefined> {
    return this.keys.get(key)?.lease;
  }

  async current(key: string): Promise<LeaseState> {
    return this.keys.get(key) ?? { lease: undefined, revision: 0 };
  }

  async write(key: string, terms: LeaseTerms, revision: number): Promise<Lease | undefined> {
    const now = this.keys.get(key);
    const matches = revision === 0 ? now?.lease === undefined : now?.revision === revision;
    if (!matches) return undefined;
    const lease = { key, ...terms, revision: ++this.revision };
    this.keys.set(key, { lease, revision: lease.revision });
    return lease;
  }

  async remove(key: string, revision: number): Promise<boolean> {
    if (this.keys.get(key)?.revision !== revision) return false;
    this.keys.set(key, { lease: undefined, revision: ++this.revision });
    return true;
  }

  async watch(): Promise<() => void> {
    return () => undefined;
  }
}

const lease = (id: string, holder: string, epoch: number, revision: number, expiresAt = 0): Lease => ({
  key: leaseKey(id),
  holder,
  epoch,
  expiresAt,
  revision,
});

describe('LeaseTable', () => {
  it('keeps a key deleted when a write of an earlier revision is acknowledged after the delete', () => {
    const table = new LeaseTable();
    table.apply('1', lease('1', 'b', 2, 126), 126);
    // The watch delivers the holder's delete (161); the coordinator's grant (160) was superseded
    // before the watch reached it, and its acknowledgement comes last.
    expect(table.apply('1', undefined, 161)).toBe(true);
    expect(table.apply('1', lease('1', 'a', 3, 160), 160)).toBe(false);
    expect(table.get('1')).toBeUndefined();
    expect(table.apply('1', lease('1', 'a', 4, 170), 170)).toBe(true);
    expect(table.get('1')?.epoch).toBe(4);
  });

  it('forgets a key that a re-read found gone from the bucket', () => {
    const table = new LeaseTable();
    table.apply('1', lease('1', 'a', 1, 10), 10);
    table.settle('1', undefined, 0);
    expect(table.get('1')).toBeUndefined();
    expect(table.apply('1', lease('1', 'b', 2, 3), 3)).toBe(true);
  });
});

describe('Coordinator', () => {
  const log = createLogger({ level: 'silent' });
  const coordinators: Coordinator[] = [];
  afterEach(async () => {
    await Promise.all(coordinators.splice(0).map((c) => c.resign()));
  });

  const member = (node: string): Member => ({
    node,
    host: 'h',
    pid: 1,
    startedAt: 0,
    expiresAt: Date.now() + 60_000,
    draining: false,
  });

  function coordinator(node: string, store: LeaseStore, leases: LeaseTable, members: Member[]) {
    const epochs = new Map<string, number>();
    // _grant_epoch for every id asked: none is busy.
    const pool = {
      query: async (_sql: string, [ids]: [string[]]) => ({
        rows: ids.map((id) => {
          epochs.set(id, (epochs.get(id) ?? 10) + 1);
          return { id, epoch: String(epochs.get(id)) };
        }),
      }),
    } as unknown as pg.Pool;
    const c = new Coordinator({
      node,
      leaseStore: store,
      leases,
      pool,
      log,
      leaseTtlMs: 2_000,
      notBefore: 0,
      view: () => ({
        streamTables: ['1'],
        members: new Map(members.map((m) => [m.node, m])),
        catalogLoaded: true,
      }),
    });
    coordinators.push(c);
    return c;
  }

  it('regrants a table whose key it believed at a revision the bucket has passed, at the next round', async () => {
    const store = new MemoryLeaseStore();
    // The holder deleted the key (161) after a grant (160) that the coordinator still believes.
    store.revision = 161;
    store.keys.set(leaseKey('1'), { lease: undefined, revision: 161 });
    const leases = new LeaseTable();
    leases.apply('1', lease('1', 'b', 3, 160), 160);
    const c = coordinator('a', store, leases, [member('a')]);
    await c.round();
    expect((await store.read(leaseKey('1')))?.holder).toBeUndefined();
    await c.round();
    expect((await store.read(leaseKey('1')))?.holder).toBe('a');
    expect(leases.get('1')?.holder).toBe('a');
  });

  it('gives the role up as soon as the watch shows a later term of another node', async () => {
    const store = new MemoryLeaseStore();
    const c = coordinator('a', store, new LeaseTable(), [member('a')]);
    await c.round();
    expect(c.isLeader()).toBe(true);
    const term = (await store.read(COORDINATOR_KEY)) as Lease;
    c.observe(term, term.revision);
    expect(c.isLeader()).toBe(true);
    // Both elections passed the compare-and-set of a replicated bucket; b's came later.
    const other = { ...term, holder: 'b', epoch: term.epoch + 1, revision: term.revision + 1 };
    c.observe(other, other.revision);
    expect(c.isLeader()).toBe(false);
  });

  it('lets the first live node by id stand for a vacant role before the second', async () => {
    const store = new MemoryLeaseStore();
    const members = [member('a'), member('b')];
    const second = coordinator('b', store, new LeaseTable(), members);
    await second.round();
    expect(await store.read(COORDINATOR_KEY)).toBeUndefined();
    const first = coordinator('a', store, new LeaseTable(), members);
    await first.round();
    expect(first.isLeader()).toBe(true);
    await second.round();
    expect(second.isLeader()).toBe(false);
    expect((await store.read(COORDINATOR_KEY))?.holder).toBe('a');
  });
});
