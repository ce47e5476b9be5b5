// The one KV bucket of a database's cluster: leases, members and the coordinator key.
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { type NatsConnection, NoRespondersError, TimeoutError } from '@nats-io/transport-node';

export interface BucketOptions {
  /**
   * Age past which NATS drops a key nobody rewrote: a bound on garbage left by dead nodes.
   * Live keys are rewritten far more often (every heartbeat or renewal).
   */
  readonly maxAgeMs: number;
  /** 3 on a 3-node NATS cluster */
  readonly replicas?: number;
  /** how long to wait for a replicated bucket to elect its leader */
  readonly readyTimeoutMs?: number;
}

/**
 * Runs a JetStream API request (creating a bucket or a watch, a first write) until it is answered
 * or `timeoutMs` is gone. A NATS cluster under load can leave such a request unanswered past the
 * client's timeout, replicated streams and consumers needing their RAFT group, or answer that
 * JetStream is not enabled while it elects its meta leader; each of these requests is safe to
 * repeat (opening finds what a timed-out creation made after all).
 */
export async function untilAnswered<T>(request: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await request();
    } catch (err) {
      if (!unanswered(err) || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

// JetStreamNotEnabled is not exported by @nats-io/jetstream: known by its name.
function unanswered(err: unknown): boolean {
  return (
    err instanceof TimeoutError ||
    err instanceof NoRespondersError ||
    (err instanceof Error && err.name === 'JetStreamNotEnabled')
  );
}

/** Opens the bucket, creating it on first use, once it can take writes. */
export async function openBucket(nc: NatsConnection, name: string, options: BucketOptions): Promise<KV> {
  const timeoutMs = options.readyTimeoutMs ?? 15_000;
  const kvm = new Kvm(nc);
  const kv = await untilAnswered(() => openOrCreate(kvm, name, options), timeoutMs);
  await untilAnswered(() => untilLed(kv, name, timeoutMs), timeoutMs);
  return kv;
}

async function openOrCreate(kvm: Kvm, name: string, options: BucketOptions): Promise<KV> {
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

// A replicated stream answers status before its RAFT group has a leader, and until then a write
// finds no responders: a node that heartbeats at once would fail to start.
async function untilLed(kv: KV, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { streamInfo } = await kv.status();
    const cluster = streamInfo.cluster;
    if (streamInfo.config.num_replicas <= 1 || cluster?.leader) return;
    if (Date.now() > deadline) {
      throw new Error(`KV bucket ${name} has no leader after ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
