// The cluster's NATS edge: leases, membership and events behind small interfaces.
export { type BucketOptions, openBucket, untilAnswered } from './bucket.js';
export { decode, encode, UnsupportedSchema } from './codec.js';
export type {
  ActorStatus,
  ClusterEvent,
  EventBus,
  FailedEvent,
  RefreshedEvent,
  StatusEvent,
} from './events.js';
export { decodeEvent, NatsEventBus } from './events.js';
export type { Lease, LeaseState, LeaseStore, LeaseTerms } from './leases.js';
export { isExpired, NatsLeaseStore } from './leases.js';
export type { Member, Membership } from './membership.js';
export { isAlive, NatsMembership } from './membership.js';
export {
  bucketName,
  COORDINATOR_KEY,
  type EventKind,
  eventSubject,
  fromSubjectToken,
  leaseKey,
  memberKey,
  nodeId,
  subjectToken,
} from './names.js';
