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

-- The installer of 0012, unchanged, under another name; _install_delta_function sets the cost
-- on what it installs.
ALTER FUNCTION pgtrickle._install_delta_function(bigint) RENAME TO _install_delta_function_core;

CREATE FUNCTION pgtrickle._install_delta_function(p_id bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_function regprocedure;
BEGIN
  PERFORM pgtrickle._install_delta_function_core(p_id);
  v_function := to_regprocedure(format('pgtrickle_delta.%I(pg_snapshot, xid8)', 'st_' || p_id));
  IF v_function IS NOT NULL THEN
    EXECUTE format('ALTER FUNCTION %s SET random_page_cost = 1.1', v_function);
  END IF;
END
$fn$;

REVOKE ALL ON FUNCTION pgtrickle._install_delta_function(bigint) FROM PUBLIC;

-- The generated functions already installed, as 0008 installed them.
SELECT pgtrickle._install_delta_function(p.pgt_id) FROM pgtrickle.pgt_plans p;
