// Membership: each node heartbeats a key of its own in the cluster bucket; a node whose
// heartbeat is older than its TTL counts as dead (swept by time: NATS 2.9 sends no expiry event).
import type { KV } from '@nats-io/kv';
import { decode, encode } from './codec.js';
import { memberKey } from './names.js';

export interface Member {
  readonly node: string;
  readonly host: string;
  readonly pid: number;
  /** epoch ms */
  readonly startedAt: number;
  /** epoch ms; past this without a new heartbeat the node is dead */
  readonly expiresAt: number;
  /** shutting down: takes no new stream tables and hands its own over */
  readonly draining: boolean;
}

interface MemberValue extends Member {
  readonly v: 1;
}

export interface Membership {
  heartbeat(member: Member): Promise<void>;
  leave(node: string): Promise<void>;
  /** Every member now, then each change (undefined: left), until the returned function is called. */
  watch(onChange: (node: string, member: Member | undefined) => void): Promise<() => void>;
}

export function isAlive(member: Member, now: number): boolean {
  return member.expiresAt > now && !member.draining;
}

export class NatsMembership implements Membership {
  constructor(private readonly kv: KV) {}

  async heartbeat(member: Member): Promise<void> {
    const value: MemberValue = { v: 1, ...member };
    await this.kv.put(memberKey(member.node), encode(value));
  }

  async leave(node: string): Promise<void> {
    await this.kv.delete(memberKey(node));
  }

  async watch(onChange: (node: string, member: Member | undefined) => void): Promise<() => void> {
    const iter = await this.kv.watch({ key: memberKey('*') });
    void (async () => {
      for await (const entry of iter) {
        const node = entry.key.slice(memberKey('').length);
        if (entry.operation !== 'PUT') {
          onChange(node, undefined);
          continue;
        }
        try {
          const { v: _, ...member } = decode<MemberValue>(entry.value, 'a member', 1);
          onChange(node, member);
        } catch {
          // A member of a newer schema: it heartbeats, but this node cannot place work on it.
        }
      }
    })();
    return () => iter.stop();
  }
}
