// What the compiler needs to know about the database, gathered by the caller beforehand so the
// compiler itself stays free of I/O and deterministic.

export interface ColumnFacts {
  name: string;
  attnum: number;
  /** format_type() of the column. */
  type: string;
  /** Whether the change buffer has this column (capture was installed after it existed). */
  captured: boolean;
}

export interface RelationFacts {
  relid: number;
  schema: string;
  name: string;
  kind: 'table' | 'stream_table' | 'view' | 'matview' | 'foreign_table';
  columns: ColumnFacts[];
  /** Primary key column names, in key order. */
  key?: string[];
  /**
   * Columns that lead a valid btree index without a predicate: a delta that reads the rows of a
   * few keys can ask for them by index (touched.ts). It never changes what a refresh computes.
   */
  indexed?: string[];
  /** Change buffer in schema pgtrickle_changes, for captured tables and stream tables. */
  buffer?: string;
  /** For views: pg_get_viewdef() under an empty search_path. */
  viewDefinition?: string;
  /**
   * Rows as of the last ANALYZE (pg_class.reltuples), when there was one. It orders the joins
   * of delta arms so that the largest relations are read as they are now, by index, and only
   * smaller ones as they were; it never changes what a refresh computes.
   */
  rows?: number;
}

export interface CompileFacts {
  /** pgt_stream_tables.defining_query: schema-qualified, columns qualified by relation alias. */
  definingQuery: string;
  /** The stream table's visible columns in order, as created from the query. */
  outputColumns: { name: string; type: string }[];
  relations: RelationFacts[];
  /** Names of aggregate functions (pg_proc.prokind = 'a'). */
  aggregateNames: ReadonlySet<string>;
  /** Names of volatile functions (pg_proc.provolatile = 'v'). */
  volatileNames: ReadonlySet<string>;
}

export function relationKey(schema: string, name: string): string {
  return `${schema}.${name}`;
}
