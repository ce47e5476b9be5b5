-- 0012: a second delta statement for large batches of changes, estimated without the change
-- buffers' statistics.
--
-- A delta statement reads each change buffer with `xid >= <frontier's xmin>`, and PostgreSQL
-- estimates that from the buffer's pg_class row. Once a buffer has been vacuumed while empty, as
-- autovacuum often does just after a refresh has trimmed it, that row says "0 tuples in n
-- pages": every later batch is estimated at one row, however large, and the joins above it
-- become nested loops that rescan their inner side per change. TPC-H SF 0.1 with 1% of each
-- table changed per cycle and the buffers so vacuumed before each cycle: Q3 ran at 0.073 of
-- FULL's speed, Q9 at 0.072 (`npm run bench:report -- --sections tpch --tpch 0.1
-- --vacuum-buffers --large-delta-rows 1000000000`).
--
-- Statements that read more than one source now come in two forms (pgt_plans.delta_sql_many,
-- written by the compiler). The generated function counts the pending changes, up to
-- pgtrickle.large_delta_rows (default 1,000), and from that many on runs the second form, which
-- reads each buffer through pgtrickle._pending_many or _pending_few: set-returning functions
-- PostgreSQL estimates at their declared 1,000 or 10 rows, by the size of the table (same run
-- without the last option: Q3 1.1, Q9 0.61). Below that the first form runs as before, planned
-- from the statistics, which for a few changes are close enough. Each form is planned once per
-- connection, as before.

-- The query of a change buffer's rows from a transaction id on ($1), for the buffer whose row
-- type is `p_type`; any other type is refused.
CREATE FUNCTION pgtrickle._pending_query(p_type regtype)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_buffer regclass;
BEGIN
  SELECT c.oid INTO v_buffer
    FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid
   WHERE t.oid = p_type AND c.relnamespace = 'pgtrickle_changes'::regnamespace AND c.relkind = 'r';
  IF v_buffer IS NULL THEN
    RAISE EXCEPTION 'type % is not the row type of a change buffer', p_type
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'pgtrickle._pending_many and _pending_few are called by the delta functions of stream tables.';
  END IF;
  RETURN format('SELECT * FROM %s WHERE xid >= $1', v_buffer);
END
$fn$;

-- The rows of a change buffer from a transaction id on, for a delta statement (`p_row` is NULL of
-- the buffer's row type), with the estimate PostgreSQL plans by: the changes of a large table in
-- a large batch (1,000 rows), and those of a small one (10 rows; below 10,000 rows, the TPC-H
-- nation, region and supplier tables, whose changes are few when there are any). They run with
-- their caller's rights.
CREATE FUNCTION pgtrickle._pending_many(p_row anyelement, p_from xid8)
RETURNS SETOF anyelement
LANGUAGE plpgsql STABLE ROWS 1000
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  RETURN QUERY EXECUTE pgtrickle._pending_query(pg_typeof(p_row)) USING p_from;
END
$fn$;

CREATE FUNCTION pgtrickle._pending_few(p_row anyelement, p_from xid8)
RETURNS SETOF anyelement
LANGUAGE plpgsql STABLE ROWS 10
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  RETURN QUERY EXECUTE pgtrickle._pending_query(pg_typeof(p_row)) USING p_from;
END
$fn$;

COMMENT ON FUNCTION pgtrickle._pending_query(regtype) IS
  'pgtrickle: the query of a change buffer''s pending rows, for _pending_many and _pending_few.';
COMMENT ON FUNCTION pgtrickle._pending_many(anyelement, xid8) IS
  'pgtrickle: the rows of a change buffer from a transaction id on, estimated at 1,000 rows (delta statements for large batches, large tables).';
COMMENT ON FUNCTION pgtrickle._pending_few(anyelement, xid8) IS
  'pgtrickle: the rows of a change buffer from a transaction id on, estimated at 10 rows (delta statements for large batches, small tables).';

ALTER TABLE pgtrickle.pgt_plans ADD COLUMN delta_sql_many text;

COMMENT ON COLUMN pgtrickle.pgt_plans.delta_sql_many IS
  'The delta statement for a batch of at least pgtrickle.large_delta_rows pending changes (NULL: delta_sql serves every batch).';

-- pgtrickle.large_delta_rows as the refresh reads it: 1,000 when unset, negative values as 0.
CREATE FUNCTION pgtrickle._large_delta_rows()
RETURNS integer
LANGUAGE sql STABLE
AS $fn$
  SELECT greatest(coalesce(nullif(pg_catalog.current_setting('pgtrickle.large_delta_rows', true), '')::integer, 1000), 0)
$fn$;

-- The query counting a stream table's pending changes ($1 its frontier), each buffer read in xid
-- order through its index and up to `p_limit` rows, an expression of the caller's (a variable of
-- the generated function, or a parameter of explain_st); NULL for a stream table without buffers.
CREATE FUNCTION pgtrickle._pending_count_sql(p_id bigint, p_limit text)
RETURNS text
LANGUAGE sql STABLE
AS $fn$
  SELECT 'SELECT count(*) FROM ('
         || string_agg(format('(SELECT FROM pgtrickle_changes.%I b WHERE b.xid >= pg_catalog.pg_snapshot_xmin($1::pg_snapshot)'
                              ' ORDER BY b.xid LIMIT %s)', ct.buffer_name, p_limit), ' UNION ALL ' ORDER BY ct.buffer_name)
         || ') __pgt_pending'
    FROM pgtrickle.pgt_dependencies d
    JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = d.source_relid
   WHERE d.pgt_id = p_id AND d.cdc_mode = 'TRIGGER'
$fn$;

-- As in 0008, and where the plan has a statement for large batches, the function chooses
-- between the two by the pending changes of the stream table's buffers, counted through their
-- xid index up to the setting.
CREATE OR REPLACE FUNCTION pgtrickle._install_delta_function(p_id bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_name text := 'st_' || p_id;
  v_sql text;
  v_many text;
  v_owner name;
  v_count text;
  v_body text;
  v_into text := E'\n  INTO pgt_snapshot, pgt_inserted, pgt_deleted, pgt_truncated, pgt_consumed;';
BEGIN
  SELECT p.delta_sql, p.delta_sql_many, r.rolname INTO v_sql, v_many, v_owner
    FROM pgtrickle.pgt_plans p
    JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id = p.pgt_id
    JOIN pg_roles r ON r.oid = s.pgt_owner
   WHERE p.pgt_id = p_id;
  IF v_sql IS NULL THEN
    RETURN;
  END IF;
  v_count := pgtrickle._pending_count_sql(p_id, '__pgt_many');
  IF v_many IS NULL OR v_count IS NULL THEN
    v_body := E'BEGIN\n' || v_sql || v_into || E'\nEND';
  ELSE
    v_body := E'DECLARE\n  __pgt_many integer := pgtrickle._large_delta_rows();\nBEGIN\n'
      || 'IF (' || v_count || E') >= __pgt_many THEN\n'
      || v_many || v_into || E'\nELSE\n' || v_sql || v_into || E'\nEND IF;\nEND';
  END IF;
  -- The statement's $1 and $2 name the function's two parameters, as they named EXECUTE's. Its
  -- names are all columns, and __pgt_many yields to a column of that name (use_column): no column
  -- of a user's query can turn into a variable.
  EXECUTE format(
    $ddl$CREATE OR REPLACE FUNCTION pgtrickle_delta.%I(pg_snapshot, xid8,
           OUT pgt_snapshot pg_snapshot, OUT pgt_inserted bigint, OUT pgt_deleted bigint, OUT pgt_truncated boolean,
           OUT pgt_consumed bigint)
         LANGUAGE plpgsql
         SET search_path = pg_catalog, pg_temp
         SET plan_cache_mode = force_generic_plan
         AS %L$ddl$,
    v_name,
    E'#variable_conflict use_column\n' || v_body);
  EXECUTE format('REVOKE ALL ON FUNCTION pgtrickle_delta.%I(pg_snapshot, xid8) FROM PUBLIC', v_name);
  EXECUTE format('GRANT USAGE ON SCHEMA pgtrickle_delta TO %I', v_owner);
  EXECUTE format('GRANT EXECUTE ON FUNCTION pgtrickle_delta.%I(pg_snapshot, xid8) TO %I', v_name, v_owner);
END
$fn$;

CREATE OR REPLACE TRIGGER pgt_plans_function
  AFTER INSERT OR UPDATE OF delta_sql, delta_sql_many OR DELETE ON pgtrickle.pgt_plans
  FOR EACH ROW EXECUTE FUNCTION pgtrickle._plan_function_sync();

-- Records a plan's statement for large batches, from _install_plan (NULL: none).
CREATE FUNCTION pgtrickle._store_plan_many(p_id bigint, p_delta_sql_many text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM pgtrickle._assert_owner(p_id);
  UPDATE pgtrickle.pgt_plans p SET delta_sql_many = p_delta_sql_many
   WHERE p.pgt_id = p_id AND p.delta_sql_many IS DISTINCT FROM p_delta_sql_many;
END
$fn$;

-- _install_plan of 0008 (hidden columns, fillfactor, the plan's statements) keeps its body under
-- another name. Both forms of _install_plan call it, then record the statement for large batches,
-- which the six-argument form clears: a plan with one statement drops the second of an earlier
-- plan.
ALTER FUNCTION pgtrickle._install_plan(bigint, text, jsonb, name[], text, text) RENAME TO _install_plan_core;

CREATE FUNCTION pgtrickle._install_plan(
  p_id bigint, p_strategy text, p_hidden_columns jsonb, p_index_columns name[], p_full_sql text,
  p_delta_sql text, p_delta_sql_many text)
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
  PERFORM pgtrickle._install_plan_core(p_id, p_strategy, p_hidden_columns, p_index_columns, p_full_sql, p_delta_sql);
  PERFORM pgtrickle._store_plan_many(p_id, p_delta_sql_many);
END
$fn$;

CREATE FUNCTION pgtrickle._install_plan(
  p_id bigint, p_strategy text, p_hidden_columns jsonb, p_index_columns name[], p_full_sql text, p_delta_sql text)
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
  PERFORM pgtrickle._install_plan(p_id, p_strategy, p_hidden_columns, p_index_columns, p_full_sql, p_delta_sql,
                                  NULL::text);
END
$fn$;

-- explain_st of 0003, explaining the statement a refresh would run now: the one for large batches
-- where the plan has one and the pending changes reach pgtrickle.large_delta_rows, as the
-- generated function decides (with a NOTICE saying so).
CREATE OR REPLACE FUNCTION pgtrickle.explain_st(name text, with_analyze boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql
AS $fn$
DECLARE
  v_id bigint := pgtrickle._resolve(name);
  st pgtrickle.pgt_stream_tables;
  v_sql text;
  v_many text;
  v_limit integer := pgtrickle._large_delta_rows();
  v_count text := pgtrickle._pending_count_sql(v_id, '$2');
  v_pending bigint;
  v_plan text;
BEGIN
  PERFORM pgtrickle._assert_owner(v_id);
  SELECT * INTO st FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = v_id;
  SELECT p.delta_sql, p.delta_sql_many INTO v_sql, v_many FROM pgtrickle.pgt_plans p WHERE p.pgt_id = v_id;
  IF v_sql IS NULL THEN
    RAISE NOTICE 'stream table "%" has no differential plan%', st.pgt_name,
      coalesce(': ' || st.fallback_reason, '; the defining query is recomputed in full');
    v_sql := st.defining_query;
    IF NOT with_analyze THEN
      RETURN v_sql;
    END IF;
  ELSIF v_many IS NOT NULL AND v_count IS NOT NULL AND st.frontier IS NOT NULL THEN
    EXECUTE v_count INTO v_pending USING st.frontier, v_limit;
    IF v_pending >= v_limit THEN
      RAISE NOTICE 'stream table "%" has % or more pending changes: this is its statement for large batches',
        st.pgt_name, v_limit
        USING HINT = 'pgtrickle.large_delta_rows sets from how many pending changes a refresh runs it.';
      v_sql := v_many;
    END IF;
  END IF;
  IF NOT with_analyze THEN
    RETURN v_sql;
  END IF;
  IF st.frontier IS NULL THEN
    RAISE EXCEPTION 'stream table "%" has never been refreshed', st.pgt_name USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- EXPLAIN ANALYZE runs the statement; the subtransaction is rolled back so nothing is applied.
  BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ' || v_sql INTO v_plan USING st.frontier, st.frontier_xid;
    RAISE EXCEPTION USING ERRCODE = 'PT002';
  EXCEPTION WHEN SQLSTATE 'PT002' THEN
    RETURN v_plan;
  END;
END
$fn$;

COMMENT ON FUNCTION pgtrickle.explain_st(text, boolean) IS
  'The SQL of a stream table''s differential refresh as it would run now (the statement for large batches from pgtrickle.large_delta_rows pending changes on), or with with_analyze its EXPLAIN ANALYZE in JSON.';
