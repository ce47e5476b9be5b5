// The cluster's NATS edge against a real nats-server: leases as compare-and-set in KV, judged
// by their expiry time; membership heartbeats; events in msgpack on per-table subjects.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { unpack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  bucketName,
  type ClusterEvent,
  eventSubject,
  fromSubjectToken,
  isAlive,
  isExpired,
  type Lease,
  leaseKey,
  type Member,
  NatsEventBus,
  NatsLeaseStore,
  NatsMembership,
  openBucket,
  type RefreshedEvent,
  subjectToken,
} from '../../cluster/nats/index.js';

const natsUrl = inject('natsUrl');
let nc: NatsConnection;
let bucketNo = 0;

async function store(): Promise<NatsLeaseStore> {
  const kv = await openBucket(nc, bucketName(`test ${process.pid} ${++bucketNo}`), { maxAgeMs: 60_000 });
  return new NatsLeaseStore(kv);
}

describe.skipIf(!natsUrl)('cluster NATS edge', () => {
  beforeAll(async () => {
    nc = await connect({ servers: natsUrl });
  });
  afterAll(async () => {
    await nc?.close();
  });

  describe('leases', () => {
    it('are created once: a second create of the same key loses', async () => {
      const leases = await store();
      const terms = { holder: 'a', epoch: 1, expiresAt: Date.now() + 5_000 };
      const first = await leases.write(leaseKey('7'), terms, 0);
      expect(first).toMatchObject({ key: 'lease.7', holder: 'a', epoch: 1 });
      expect(await leases.write(leaseKey('7'), { ...terms, holder: 'b' }, 0)).toBeUndefined();
      expect(await leases.read(leaseKey('7'))).toEqual(first);
    });

    it('are updated only from the revision the writer read', async () => {
      const leases = await store();
      const first = (await leases.write('lease.1', { holder: 'a', epoch: 1, expiresAt: 1 }, 0)) as Lease;
      const renewed = await leases.write('lease.1', { holder: 'a', epoch: 1, expiresAt: 2 }, first.revision);
      expect(renewed?.revision).toBeGreaterThan(first.revision);
      // The coordinator regranting from the old revision lost to the renewal.
      expect(
        await leases.write('lease.1', { holder: 'b', epoch: 2, expiresAt: 3 }, first.revision),
      ).toBeUndefined();
      expect((await leases.read('lease.1'))?.holder).toBe('a');
    });

    it('are removed only at the revision the remover read, and can be created again', async () => {
      const leases = await store();
      const first = (await leases.write('lease.2', { holder: 'a', epoch: 1, expiresAt: 1 }, 0)) as Lease;
      const renewed = (await leases.write(
        'lease.2',
        { holder: 'a', epoch: 1, expiresAt: 2 },
        first.revision,
      )) as Lease;
      expect(await leases.remove('lease.2', first.revision)).toBe(false);
      expect(await leases.remove('lease.2', renewed.revision)).toBe(true);
      expect(await leases.read('lease.2')).toBeUndefined();
      expect(await leases.write('lease.2', { holder: 'b', epoch: 2, expiresAt: 3 }, 0)).toMatchObject({
        holder: 'b',
      });
    });

    it('expire by their time, with no event from NATS: a reader judges them by the clock', async () => {
      const leases = await store();
      const now = Date.now();
      const lease = (await leases.write(
        'lease.3',
        { holder: 'a', epoch: 1, expiresAt: now + 200 },
        0,
      )) as Lease;
      expect(isExpired(lease, now)).toBe(false);
      await new Promise((r) => setTimeout(r, 300));
      const read = (await leases.read('lease.3')) as Lease;
      // Still stored: NATS 2.9 keeps the key; expiry is the reader's judgement.
      expect(read.holder).toBe('a');
      expect(isExpired(read, Date.now())).toBe(true);
      // A taker writes over the expired lease with its revision.
      expect(
        await leases.write(
          'lease.3',
          { holder: 'b', epoch: 2, expiresAt: Date.now() + 1_000 },
          read.revision,
        ),
      ).toMatchObject({
        holder: 'b',
      });
    });

    it('are watched: current values first, then each change and deletion', async () => {
      const leases = await store();
      await leases.write('lease.10', { holder: 'a', epoch: 1, expiresAt: 1 }, 0);
      const seen: [string, string | undefined][] = [];
      const stop = await leases.watch(leaseKey('>'), (key, lease) => seen.push([key, lease?.holder]));
      try {
        const b = (await leases.write('lease.11', { holder: 'b', epoch: 1, expiresAt: 1 }, 0)) as Lease;
        await leases.remove('lease.11', b.revision);
        await expect
          .poll(() => seen)
          .toEqual([
            ['lease.10', 'a'],
            ['lease.11', 'b'],
            ['lease.11', undefined],
          ]);
      } finally {
        stop();
      }
    });
  });

  describe('membership', () => {
    it('shows each heartbeat and a leave; a member is alive until its expiry and unless draining', async () => {
      const kv = await openBucket(nc, bucketName(`members ${process.pid}`), { maxAgeMs: 60_000 });
      const membership = new NatsMembership(kv);
      const seen = new Map<string, Member>();
      const stop = await membership.watch((node, m) => {
        if (m) seen.set(node, m);
        else seen.delete(node);
      });
      try {
        const now = Date.now();
        const member = {
          node: 'n1',
          host: 'h',
          pid: 1,
          startedAt: now,
          expiresAt: now + 1_000,
          draining: false,
        };
        await membership.heartbeat(member);
        await expect.poll(() => seen.get('n1')?.expiresAt).toBe(now + 1_000);
        expect(isAlive(member, now)).toBe(true);
        expect(isAlive(member, now + 1_000)).toBe(false);
        expect(isAlive({ ...member, draining: true }, now)).toBe(false);
        await membership.leave('n1');
        await expect.poll(() => seen.has('n1')).toBe(false);
      } finally {
        stop();
      }
    });
  });

  describe('events', () => {
    it('are published on the stream table subject and decode with plain msgpackr', async () => {
      const bus = new NatsEventBus(nc);
      const raw: { subject: string; data: unknown }[] = [];
      const sub = nc.subscribe('pgtrickle.*.st.>', {
        callback: (_e, msg) => {
          raw.push({ subject: msg.subject, data: unpack(msg.data) });
        },
      });
      const decoded: ClusterEvent[] = [];
      const stop = bus.subscribe(eventSubject('shop db', '*', '*', 'refreshed'), (e) => decoded.push(e));
      await nc.flush();
      const event: RefreshedEvent = {
        v: 1,
        type: 'refreshed',
        db: 'shop db',
        schema: 'public',
        name: 'orders.by "day"',
        pgt_id: '12',
        node: 'n1',
        epoch: 3,
        at: 1_700_000_000_000,
        action: 'DIFFERENTIAL',
        refresh_id: '99',
        rows_inserted: 2,
        rows_deleted: 1,
        changes_consumed: 3,
        duration_ms: 1.5,
        frontier: '800:805:801',
      };
      try {
        bus.publish(event);
        await expect.poll(() => raw.length).toBe(1);
        expect(raw[0]?.subject).toBe('pgtrickle.shop%20db.st.public.orders%2Eby%20%22day%22.refreshed');
        expect(raw[0]?.data).toEqual(event);
        await expect.poll(() => decoded).toEqual([event]);
      } finally {
        stop();
        sub.unsubscribe();
      }
    });

    it('encode any name as one subject token and back', () => {
      for (const name of ['orders', 'a.b', 'x y', '*', '>', '%', 'ünï', 'Mixed_Case-1']) {
        const token = subjectToken(name);
        expect(token).toMatch(/^[A-Za-z0-9_%-]+$/);
        expect(fromSubjectToken(token)).toBe(name);
      }
    });
  });
});
