// Events about stream tables on NATS, msgpack-encoded, schema version 1. Subjects:
// pgtrickle.<db>.st.<schema>.<name>.refreshed | .failed | .status (tokens per subjectToken).
// Keys are snake_case like the pg_trickle_refresh payload, so SQL and NATS users read the same facts.
import type { NatsConnection } from '@nats-io/transport-node';
import { decode, encode } from './codec.js';
import { eventSubject } from './names.js';

interface EventBase {
  /** schema version */
  readonly v: 1;
  readonly db: string;
  readonly schema: string;
  readonly name: string;
  /** pgt_id */
  readonly pgt_id: string;
  /** the node that publishes */
  readonly node: string;
  /** fencing epoch the node holds the stream table under */
  readonly epoch: number;
  /** epoch ms */
  readonly at: number;
}

/** One committed refresh: exactly one per row of pgt_refresh_history with status COMPLETED. */
export interface RefreshedEvent extends EventBase {
  readonly type: 'refreshed';
  readonly action: 'FULL' | 'DIFFERENTIAL' | 'REINITIALIZE' | 'NO_DATA';
  readonly refresh_id: string;
  readonly rows_inserted: number;
  readonly rows_deleted: number;
  /** null when a full recompute did not count them */
  readonly changes_consumed: number | null;
  readonly duration_ms: number;
  /** the new frontier, as pg_snapshot text (xmin:xmax:xip,…) */
  readonly frontier: string;
}

/** A refresh or reinit failed and rolled back; the node backs off and retries. */
export interface FailedEvent extends EventBase {
  readonly type: 'failed';
  readonly work: 'refresh' | 'reinit';
  readonly error: { readonly code: string | null; readonly message: string };
  readonly consecutive_failures: number;
}

/**
 * Where the stream table's actor is: SCHEDULED (refreshing on schedule), BACKOFF (after a
 * failure), SUSPENDED (status SUSPENDED or ERROR), RELEASED (lease lost or handed over).
 */
export type ActorStatus = 'SCHEDULED' | 'BACKOFF' | 'SUSPENDED' | 'RELEASED';

export interface StatusEvent extends EventBase {
  readonly type: 'status';
  readonly status: ActorStatus;
  readonly previous: ActorStatus | null;
}

export type ClusterEvent = RefreshedEvent | FailedEvent | StatusEvent;

export interface EventBus {
  /** Fire and forget: an event lost with a dying connection is in pgt_refresh_history. */
  publish(event: ClusterEvent): void;
  /** Decoded events on `subject` (wildcards allowed) until the returned function is called. */
  subscribe(subject: string, onEvent: (event: ClusterEvent, subject: string) => void): () => void;
}

export function decodeEvent(bytes: Uint8Array): ClusterEvent {
  return decode<ClusterEvent>(bytes, 'an event', 1);
}

export class NatsEventBus implements EventBus {
  constructor(private readonly nc: NatsConnection) {}

  publish(event: ClusterEvent): void {
    this.nc.publish(eventSubject(event.db, event.schema, event.name, event.type), encode(event));
  }

  subscribe(subject: string, onEvent: (event: ClusterEvent, subject: string) => void): () => void {
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          onEvent(decodeEvent(msg.data), msg.subject);
        } catch {
          // An event of another schema version is not for this reader.
        }
      },
    });
    return () => sub.unsubscribe();
  }
}
