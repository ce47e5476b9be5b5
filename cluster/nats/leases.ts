// Leases in NATS KV: who holds a key (a stream table, or the coordinator role), under which
// fencing epoch, until when. Every write is a compare-and-set on the key's revision. NATS 2.9
// has no per-key TTL and no watch event on expiry, so a lease carries its expiry time and
// readers judge it by their clock; the fencing epoch in the catalog covers clock skew (I3).
// On a replicated bucket the compare-and-set is a check before the RAFT proposal, not part of
// it (nats-server#4320, in 2.9.10 here and up to 2.9.20): two writers from the same revision
// that are a few ms apart may both succeed, the later one winning. The callers do not rely on
// losing: the epoch in the catalog decides (I3), and what they believe of a key is corrected by
// the watch and by re-reading it (cluster/node/lease-table.ts).
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import { decode, encode } from './codec.js';

export interface Lease {
  readonly key: string;
  /** node id */
  readonly holder: string;
  /** the catalog's fencing_epoch at the grant; 0 for the coordinator key */
  readonly epoch: number;
  /** epoch ms */
  readonly expiresAt: number;
  /** KV revision: the compare-and-set token of the next write */
  readonly revision: number;
}

export type LeaseTerms = Pick<Lease, 'holder' | 'epoch' | 'expiresAt'>;

/** A key as the bucket holds it: its lease, or none (never written, or deleted), at `revision`. */
export interface LeaseState {
  readonly lease: Lease | undefined;
  /** KV revision of the last write, a delete included; 0 when the key was never written */
  readonly revision: number;
}

export interface LeaseStore {
  read(key: string): Promise<Lease | undefined>;
  /** What the bucket holds for `key` now, with the revision of its last write or delete. */
  current(key: string): Promise<LeaseState>;
  /**
   * Writes `terms` if the key is still at `revision` (0: no lease, or a deleted one). Returns the
   * new lease, or undefined when another writer came first.
   */
  write(key: string, terms: LeaseTerms, revision: number): Promise<Lease | undefined>;
  /** Deletes the lease if it is still at `revision`; false when another writer came first. */
  remove(key: string, revision: number): Promise<boolean>;
  /**
   * Calls `onChange` with every lease under `prefix` (a key, or `lease.>`), then with each
   * change (undefined: deleted) and its revision until the returned function is called. With a
   * history of one, a write superseded before the watch reached it is never delivered.
   */
  watch(
    prefix: string,
    onChange: (key: string, lease: Lease | undefined, revision: number) => void,
  ): Promise<() => void>;
}

/** Stored value, schema version 1. */
interface LeaseValue {
  readonly v: 1;
  readonly holder: string;
  readonly epoch: number;
  readonly expiresAt: number;
}

export function isExpired(lease: Pick<Lease, 'expiresAt'>, now: number): boolean {
  return lease.expiresAt <= now;
}

function fromEntry(entry: KvEntry): Lease | undefined {
  if (entry.operation !== 'PUT') return undefined;
  const value = decode<LeaseValue>(entry.value, 'a lease', 1);
  return {
    key: entry.key,
    holder: value.holder,
    epoch: value.epoch,
    expiresAt: value.expiresAt,
    revision: entry.revision,
  };
}

function lostRace(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

export class NatsLeaseStore implements LeaseStore {
  constructor(private readonly kv: KV) {}

  async read(key: string): Promise<Lease | undefined> {
    const entry = await this.kv.get(key);
    return entry === null ? undefined : fromEntry(entry);
  }

  async current(key: string): Promise<LeaseState> {
    const entry = await this.kv.get(key);
    return entry === null
      ? { lease: undefined, revision: 0 }
      : { lease: fromEntry(entry), revision: entry.revision };
  }

  async write(key: string, terms: LeaseTerms, revision: number): Promise<Lease | undefined> {
    const value: LeaseValue = { v: 1, holder: terms.holder, epoch: terms.epoch, expiresAt: terms.expiresAt };
    try {
      const next =
        revision === 0
          ? await this.kv.create(key, encode(value))
          : await this.kv.update(key, encode(value), revision);
      return { key, ...terms, revision: next };
    } catch (err) {
      if (lostRace(err) || (revision === 0 && err instanceof Error && /exists/i.test(err.message))) {
        return undefined;
      }
      throw err;
    }
  }

  async remove(key: string, revision: number): Promise<boolean> {
    try {
      await this.kv.delete(key, { previousSeq: revision });
      return true;
    } catch (err) {
      if (lostRace(err)) return false;
      throw err;
    }
  }

  async watch(
    prefix: string,
    onChange: (key: string, lease: Lease | undefined, revision: number) => void,
  ): Promise<() => void> {
    const iter = await this.kv.watch({ key: prefix });
    void (async () => {
      for await (const entry of iter) {
        let lease: Lease | undefined;
        try {
          lease = fromEntry(entry);
        } catch {
          // A value of a newer schema: treat the key as held by someone this node cannot read.
          continue;
        }
        onChange(entry.key, lease, entry.revision);
      }
    })();
    return () => iter.stop();
  }
}
