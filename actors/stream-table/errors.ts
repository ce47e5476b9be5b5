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

/** The machine was started without a runner for its refresh or reinit work (see withWork). */
export class WorkNotProvided extends Error {
  readonly code = 'WORK_NOT_PROVIDED';
  readonly work: string;

  constructor(work: string) {
    super(`the stream-table machine needs a "${work}" runner: start it from withWork({ refresh, reinit })`);
    this.name = 'WorkNotProvided';
    this.work = work;
  }
}
