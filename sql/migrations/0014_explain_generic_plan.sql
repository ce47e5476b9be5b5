-- 0014: explain_st(name, with_analyze => true) explains the plan a refresh runs.
--
-- A refresh runs its delta statement from the stream table's generated function, planned once
-- per connection for any frontier (plan_cache_mode = force_generic_plan, migration 0008) and
-- with JIT off. explain_st ran it with EXECUTE … USING, which plans it for the frontier's
-- values: a custom plan, at times a very different one (TPC-H Q18 at SF 0.1 with 0.1% changed
-- per cycle: 8.5 s under EXPLAIN ANALYZE, 0.12 s in the refresh). It now prepares the statement
-- and explains it under the generated function's settings (a generic plan), with JIT off.

-- As in 0012, with the generic plan.
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
  v_statement text := format('pgtrickle_explain_%s', v_id);
  v_delta boolean;
BEGIN
  PERFORM pgtrickle._assert_owner(v_id);
  SELECT * INTO st FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = v_id;
  SELECT p.delta_sql, p.delta_sql_many INTO v_sql, v_many FROM pgtrickle.pgt_plans p WHERE p.pgt_id = v_id;
  v_delta := v_sql IS NOT NULL;
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
  IF NOT v_delta THEN
    BEGIN
      EXECUTE 'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ' || v_sql INTO v_plan;
      RAISE EXCEPTION USING ERRCODE = 'PT002';
    EXCEPTION WHEN SQLSTATE 'PT002' THEN
      RETURN v_plan;
    END;
  END IF;
  -- A refresh runs the statement from its generated function: planned for any frontier
  -- (plan_cache_mode = force_generic_plan) and without JIT. EXECUTE … USING would plan it for
  -- this frontier's values instead, which can be a different plan altogether (TPC-H Q18 at SF 0.1:
  -- 8.5 s explained, 0.12 s refreshed). So it is prepared and explained as a generic plan. A
  -- prepared statement outlives a rollback: it is removed on every way out.
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements p WHERE p.name = v_statement) THEN
    EXECUTE format('DEALLOCATE %I', v_statement);
  END IF;
  EXECUTE format('PREPARE %I (pg_snapshot, xid8) AS %s', v_statement, v_sql);
  BEGIN
    -- The settings of the generated function (plan_cache_mode, and whatever a later migration
    -- adds), and _refresh's JIT off.
    PERFORM set_config(split_part(c.setting, '=', 1), substr(c.setting, strpos(c.setting, '=') + 1), true)
       FROM pg_catalog.pg_proc f CROSS JOIN LATERAL unnest(f.proconfig) AS c(setting)
      WHERE f.oid = to_regprocedure(format('pgtrickle_delta.%I(pg_snapshot, xid8)', 'st_' || v_id))
        AND split_part(c.setting, '=', 1) <> 'search_path';
    PERFORM set_config('jit', 'off', true);
    EXECUTE format('EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE %I (%L, %L)',
                   v_statement, st.frontier, st.frontier_xid) INTO v_plan;
    RAISE EXCEPTION USING ERRCODE = 'PT002';
  EXCEPTION
    WHEN SQLSTATE 'PT002' THEN
      EXECUTE format('DEALLOCATE %I', v_statement);
      RETURN v_plan;
    WHEN OTHERS OR query_canceled THEN
      EXECUTE format('DEALLOCATE %I', v_statement);
      RAISE;
  END;
END
$fn$;

COMMENT ON FUNCTION pgtrickle.explain_st(text, boolean) IS
  'The SQL of a stream table''s differential refresh as it would run now (the statement for large batches from pgtrickle.large_delta_rows pending changes on), or with with_analyze the EXPLAIN ANALYZE in JSON of the plan a refresh uses (generic, JIT off).';
