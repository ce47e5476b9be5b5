// What a node believes of the stream-table leases, by pgt_id: the latest revision it has seen
// of each key, whether from the watch, from its own writes or from re-reading the key. Each
// source can arrive late (a write's acknowledgement after the watch already delivered a later
// change), so a change is taken only when its revision is newer than what the key last showed,
// a delete included: a grant acknowledged after the watch delivered the holder's later delete
// must not bring a lease back that the bucket no longer holds.
import type { Lease } from '../nats/index.js';

export class LeaseTable implements Iterable<[string, Lease]> {
  private readonly leases = new Map<string, Lease>();
  /** the last revision seen of each key, deletes included */
  private readonly revisions = new Map<string, number>();

  get(id: string): Lease | undefined {
    return this.leases.get(id);
  }

  values(): IterableIterator<Lease> {
    return this.leases.values();
  }

  [Symbol.iterator](): IterableIterator<[string, Lease]> {
    return this.leases.entries();
  }

  /**
   * The key of `id` shows `lease` (undefined: deleted) at `revision`. Taken unless a later
   * revision of the key was seen already; returns whether it was.
   */
  apply(id: string, lease: Lease | undefined, revision: number): boolean {
    if (revision <= (this.revisions.get(id) ?? 0)) return false;
    this.revisions.set(id, revision);
    if (lease === undefined) this.leases.delete(id);
    else this.leases.set(id, lease);
    return true;
  }

  /**
   * What a re-read of the key found: a write or delete at a later revision, or (revision 0) a
   * key the bucket no longer holds at all, as one untouched for its max age. The watch reports
   * neither a key aged out nor a write superseded before it was delivered.
   */
  settle(id: string, lease: Lease | undefined, revision: number): void {
    if (revision > 0) {
      this.apply(id, lease, revision);
      return;
    }
    this.leases.delete(id);
    this.revisions.delete(id);
  }
}
