-- 0001: catalog tables of schema pgtrickle and the change-buffer schema.
-- Names follow pg_trickle v0.19.0 so its users find what they know; the frontier is an MVCC
-- snapshot (invariant I2), never a max change id.

CREATE SCHEMA IF NOT EXISTS pgtrickle;
CREATE SCHEMA IF NOT EXISTS pgtrickle_changes;

-- Change buffers are written only by the generated SECURITY DEFINER capture functions.
REVOKE ALL ON SCHEMA pgtrickle_changes FROM PUBLIC;
GRANT USAGE ON SCHEMA pgtrickle TO PUBLIC;

CREATE TABLE pgtrickle.pgt_stream_tables (
  pgt_id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  pgt_relid          oid NOT NULL UNIQUE,
  pgt_schema         name NOT NULL,
  pgt_name           name NOT NULL,
  pgt_owner          oid NOT NULL,
  original_query     text NOT NULL,
  defining_query     text NOT NULL,
  schedule           text NOT NULL,
  refresh_mode       text NOT NULL DEFAULT 'AUTO'
                     CHECK (refresh_mode IN ('FULL', 'DIFFERENTIAL', 'AUTO')),
  -- What refreshes actually do: set when a node compiles the query; NULL until then (FULL).
  effective_mode     text CHECK (effective_mode IN ('FULL', 'DIFFERENTIAL')),
  fallback_reason    text,
  status             text NOT NULL DEFAULT 'INITIALIZING'
                     CHECK (status IN ('INITIALIZING', 'ACTIVE', 'SUSPENDED', 'ERROR')),
  is_populated       boolean NOT NULL DEFAULT false,
  needs_reinit       boolean NOT NULL DEFAULT false,
  -- Snapshot of the last committed refresh, plus that refresh's own xid: PostgreSQL leaves a
  -- transaction's own xid out of pg_current_snapshot(), yet the refresh saw its own writes.
  frontier           pg_snapshot,
  frontier_xid       xid8,
  fencing_epoch      bigint NOT NULL DEFAULT 0 CHECK (fencing_epoch >= 0),
  consecutive_errors integer NOT NULL DEFAULT 0 CHECK (consecutive_errors >= 0),
  last_error         text,
  last_error_at      timestamptz,
  data_timestamp     timestamptz,
  last_refresh_at    timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (pgt_schema, pgt_name)
);
CREATE INDEX pgt_stream_tables_status_idx ON pgtrickle.pgt_stream_tables (status);

COMMENT ON TABLE pgtrickle.pgt_stream_tables IS 'One row per stream table: definition, schedule, status and refresh frontier.';

CREATE TABLE pgtrickle.pgt_dependencies (
  pgt_id       bigint NOT NULL REFERENCES pgtrickle.pgt_stream_tables (pgt_id) ON DELETE CASCADE,
  source_relid oid NOT NULL,
  source_type  text NOT NULL
               CHECK (source_type IN ('TABLE', 'STREAM_TABLE', 'VIEW', 'MATVIEW', 'FOREIGN_TABLE')),
  cdc_mode     text NOT NULL CHECK (cdc_mode IN ('TRIGGER', 'NONE')),
  columns_used name[],
  PRIMARY KEY (pgt_id, source_relid)
);
CREATE INDEX pgt_dependencies_source_idx ON pgtrickle.pgt_dependencies (source_relid);

COMMENT ON TABLE pgtrickle.pgt_dependencies IS 'Relations each stream table reads, views expanded down to their base tables.';

CREATE TABLE pgtrickle.pgt_refresh_history (
  refresh_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  pgt_id           bigint NOT NULL REFERENCES pgtrickle.pgt_stream_tables (pgt_id) ON DELETE CASCADE,
  start_time       timestamptz NOT NULL,
  end_time         timestamptz,
  action           text NOT NULL CHECK (action IN ('FULL', 'DIFFERENTIAL', 'REINITIALIZE', 'NO_DATA')),
  status           text NOT NULL CHECK (status IN ('COMPLETED', 'FAILED', 'SKIPPED')),
  initiated_by     text NOT NULL CHECK (initiated_by IN ('SCHEDULER', 'MANUAL', 'INITIAL')),
  rows_inserted    bigint,
  rows_deleted     bigint,
  changes_consumed bigint,
  frontier         pg_snapshot,
  fencing_epoch    bigint,
  node_id          text,
  error_message    text
);
CREATE INDEX pgt_refresh_history_pgt_idx ON pgtrickle.pgt_refresh_history (pgt_id, start_time DESC);

COMMENT ON TABLE pgtrickle.pgt_refresh_history IS 'One row per refresh attempt; removed with its stream table.';

CREATE TABLE pgtrickle.pgt_plans (
  pgt_id         bigint PRIMARY KEY REFERENCES pgtrickle.pgt_stream_tables (pgt_id) ON DELETE CASCADE,
  strategy       text NOT NULL CHECK (strategy IN ('multiset', 'keyed', 'aggregate', 'aggregate_recompute', 'distinct')),
  hidden_columns jsonb NOT NULL,
  full_sql       text NOT NULL,
  delta_sql      text NOT NULL,
  compiled_at    timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE pgtrickle.pgt_plans IS 'Compiled differential refresh of a stream table: one statement that applies the delta.';

CREATE TABLE pgtrickle.pgt_change_tracking (
  source_relid     oid PRIMARY KEY,
  buffer_name      name NOT NULL UNIQUE,
  capture_mode     text NOT NULL DEFAULT 'TRIGGER' CHECK (capture_mode IN ('TRIGGER')),
  captured_attnums smallint[] NOT NULL,
  key_attnums      smallint[],
  created_at       timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE pgtrickle.pgt_change_tracking IS 'One row per captured source: its change buffer in schema pgtrickle_changes.';

-- One sequence for every buffer: nextval is monotonic within a backend, so statements of one
-- transaction replay in the order they ran (TRUNCATE before the INSERT that follows it).
CREATE SEQUENCE pgtrickle_changes.op_seq;

GRANT SELECT ON pgtrickle.pgt_stream_tables, pgtrickle.pgt_dependencies,
  pgtrickle.pgt_refresh_history, pgtrickle.pgt_change_tracking, pgtrickle.pgt_plans TO PUBLIC;
