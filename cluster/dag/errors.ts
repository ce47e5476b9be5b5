// Why a set of stream tables does not form a DAG the coordinator can schedule.

/** Stream tables that read each other in a loop; `path` starts and ends with the same id. */
export class DagCycle extends Error {
  readonly code = 'DAG_CYCLE';
  readonly path: readonly string[];

  constructor(path: readonly string[]) {
    super(`stream tables read each other in a cycle: ${path.join(' → ')}`);
    this.name = 'DagCycle';
    this.path = path;
  }
}

/** A stream table reads a stream table the DAG was not given. */
export class UnknownSource extends Error {
  readonly code = 'DAG_UNKNOWN_SOURCE';
  readonly id: string;
  readonly source: string;

  constructor(id: string, source: string) {
    super(`stream table ${id} reads stream table ${source}, which is not in the DAG`);
    this.name = 'UnknownSource';
    this.id = id;
    this.source = source;
  }
}

export class DuplicateStreamTable extends Error {
  readonly code = 'DAG_DUPLICATE_NODE';
  readonly id: string;

  constructor(id: string) {
    super(`stream table ${id} is given twice`);
    this.name = 'DuplicateStreamTable';
    this.id = id;
  }
}

/** A lookup by an id the DAG does not hold. */
export class StreamTableNotInDag extends Error {
  readonly code = 'DAG_UNKNOWN_NODE';
  readonly id: string;

  constructor(id: string) {
    super(`stream table ${id} is not in the DAG`);
    this.name = 'StreamTableNotInDag';
    this.id = id;
  }
}
