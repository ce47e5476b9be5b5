-- 0015: delta statements planned with random_page_cost = 1.1.
--
-- A delta statement reads a few rows of large tables through their indexes, rows that recent
-- writes (the changes it reads) have just touched, and pages that its refreshes read again and
-- again. PostgreSQL's default random_page_cost of 4 prices each such probe as a read from disk,
-- and hashing a whole table often came out cheaper: TPC-H Q18 at SF 0.1 hashed all 150,000
-- orders to join 1,269 changed lineitems (53 of its 83 ms at 0.1% change per cycle). The
-- generated functions now plan their statements at 1.1, the value commonly used for SSDs and
-- cached data, whatever the server's default; FULL refreshes keep the server's setting. Lab, SF
-- 0.1, 1% of each table per cycle, two runs each way: median FULL/DIFF of the 22 queries
-- 1.00–1.09× → 1.28–1.30× (Q16 1.7× → 3.6×, Q18 1.8× → 2.1–2.8×, Q22 0.18–0.21× → 0.14–0.16×).

-- As in 0012, with random_page_cost.
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
         SET random_page_cost = 1.1
         AS %L$ddl$,
    v_name,
    E'#variable_conflict use_column\n' || v_body);
  EXECUTE format('REVOKE ALL ON FUNCTION pgtrickle_delta.%I(pg_snapshot, xid8) FROM PUBLIC', v_name);
  EXECUTE format('GRANT USAGE ON SCHEMA pgtrickle_delta TO %I', v_owner);
  EXECUTE format('GRANT EXECUTE ON FUNCTION pgtrickle_delta.%I(pg_snapshot, xid8) TO %I', v_name, v_owner);
END
$fn$;


-- The generated functions already installed.
DO $do$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
            WHERE p.pronamespace = 'pgtrickle_delta'::regnamespace
              AND p.oid = to_regprocedure(format('pgtrickle_delta.%I(pg_snapshot, xid8)', p.proname))
            ORDER BY p.oid LOOP
    EXECUTE format('ALTER FUNCTION %s SET random_page_cost = 1.1', f);
  END LOOP;
END
$do$;
