// Errors the stream-table actor reacts to by name.

/**
 * The catalog's fencing epoch moved past this node's: another node holds the stream table now.
 * Refresh actors throw it (from SQLSTATE PT001) so that the actor gives the table up (I3).
 */
export class StaleFencingEpoch extends Error {
  readonly code = 'STALE_EPOCH';
  readonly id: string;

  constructor(id: string, options: { cause?: unknown } = {}) {
    super(`stale fencing epoch for stream table ${id}`, options);
    this.name = 'StaleFencingEpoch';
    this.id = id;
  }
}

/** The machine was started without `.provide()` for one of its invoked actors. */
export class ActorNotProvided extends Error {
  readonly code = 'ACTOR_NOT_PROVIDED';
  readonly actor: string;

  constructor(actor: string) {
    super(`the stream-table machine needs a "${actor}" actor: pass one with .provide({ actors })`);
    this.name = 'ActorNotProvided';
    this.actor = actor;
  }
}
