// Names a cluster uses in NATS: subject tokens for databases, schemas and stream tables, the KV
// bucket of a database's cluster, and the keys inside it.
import { createHash } from 'node:crypto';

const PLAIN_TOKEN = /^[A-Za-z0-9_-]+$/;

/**
 * One subject token for any PostgreSQL name. Subjects split on '.', and ' ', '*', '>' have
 * meanings of their own, so every byte outside [A-Za-z0-9_-] is percent-encoded (UTF-8), '%'
 * included: `public.orders` stays two tokens, `"my.table"` becomes `my%2Etable`.
 */
export function subjectToken(name: string): string {
  if (name.length === 0) throw new RangeError('a subject token cannot be empty');
  let out = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += byte < 0x80 && PLAIN_TOKEN.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The inverse of subjectToken. */
export function fromSubjectToken(token: string): string {
  return decodeURIComponent(token);
}

export type EventKind = 'refreshed' | 'failed' | 'status';

/** `pgtrickle.<db>.st.<schema>.<name>.<kind>`; pass '*' tokens through for subscriptions. */
export function eventSubject(db: string, schema: string, name: string, kind: EventKind | '*'): string {
  const token = (s: string) => (s === '*' ? s : subjectToken(s));
  return `pgtrickle.${token(db)}.st.${token(schema)}.${token(name)}.${kind}`;
}

/**
 * KV bucket names allow [A-Za-z0-9_-] only; a database name outside that keeps a readable
 * prefix and gains a hash, so two databases never share a bucket.
 */
export function bucketName(db: string): string {
  if (PLAIN_TOKEN.test(db) && db.length <= 48) return `pgtrickle_${db}`;
  const hash = createHash('sha256').update(db).digest('hex').slice(0, 12);
  return `pgtrickle_${db.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 32)}_${hash}`;
}

export const COORDINATOR_KEY = 'coordinator';

export function leaseKey(stId: string): string {
  return `lease.${stId}`;
}

export function memberKey(node: string): string {
  return `node.${node}`;
}

/** A node id usable as a KV key token: host, pid and a random suffix. */
export function nodeId(host: string, pid: number, random: string): string {
  return `${host.replace(/[^A-Za-z0-9_-]/g, '-')}-${pid}-${random}`;
}
