// The one KV bucket of a database's cluster: leases, members and the coordinator key.
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

export interface BucketOptions {
  /**
   * Age past which NATS drops a key nobody rewrote: a bound on garbage left by dead nodes.
   * Live keys are rewritten far more often (every heartbeat or renewal).
   */
  readonly maxAgeMs: number;
  /** 3 on a 3-node NATS cluster */
  readonly replicas?: number;
}

/** Opens the bucket, creating it on first use. */
export async function openBucket(nc: NatsConnection, name: string, options: BucketOptions): Promise<KV> {
  const kvm = new Kvm(nc);
  // open() binds without asking the server; status() is what finds out whether it exists. An
  // existing bucket keeps its settings, whichever node created it.
  const existing = await kvm.open(name);
  try {
    await existing.status();
    return existing;
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) throw err;
  }
  // Two nodes starting at once both create it with the same settings; NATS accepts both.
  return kvm.create(name, { history: 1, ttl: options.maxAgeMs, replicas: options.replicas ?? 1 });
}
