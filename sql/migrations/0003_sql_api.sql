-- 0003: the SQL API. Public functions run as the caller (SECURITY INVOKER), so a defining query
-- is only ever validated and evaluated with the rights of the role that owns the stream table.
-- Catalog writes and trigger installation go through SECURITY DEFINER functions that check
-- ownership against pgtrickle._caller() themselves.

CREATE FUNCTION pgtrickle.version()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '0.1.0'::text $$;

COMMENT ON FUNCTION pgtrickle.version() IS 'Version of the installed pgtrickle catalog.';

CREATE FUNCTION pgtrickle._normalize_schedule(p_schedule text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v text := btrim(p_schedule);
  v_fields text[];
  v_bounds int[];
BEGIN
  IF v IS NULL OR lower(v) = 'calculated' THEN
    RETURN 'CALCULATED';
  END IF;
  IF v ~ '^([0-9]+(ms|s|m|h|d))+$' THEN
    IF v !~ '[1-9]' THEN
      RAISE EXCEPTION 'invalid schedule "%": the interval must be greater than zero', p_schedule
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v;
  END IF;
  IF v ~* '^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$' THEN
    RETURN lower(v);
  END IF;
  IF v ~ '^[0-9A-Za-z*/,?#LW-]+(\s+[0-9A-Za-z*/,?#LW-]+){4,5}$' THEN
    v_fields := regexp_split_to_array(v, '\s+');
    -- Five fields are minute … weekday; a sixth, leading one is seconds (as croner reads it).
    v_bounds := CASE array_length(v_fields, 1) WHEN 6 THEN '{{0,59},{0,59},{0,23},{1,31},{1,12},{0,7}}'::int[]
                ELSE '{{0,59},{0,23},{1,31},{1,12},{0,7}}'::int[] END;
    FOR i IN 1 .. array_length(v_fields, 1) LOOP
      -- Numbers that start a field or follow ',' or '-' are values; those after '/' are steps.
      IF EXISTS (SELECT 1 FROM regexp_matches(v_fields[i], '(^|[,-])([0-9]+)', 'g') m
                  WHERE m[2]::numeric NOT BETWEEN v_bounds[i][1] AND v_bounds[i][2]) THEN
        RAISE EXCEPTION 'invalid schedule "%": field % is out of range', p_schedule, i
          USING ERRCODE = 'invalid_parameter_value',
                HINT = format('Values of that field go from %s to %s.', v_bounds[i][1], v_bounds[i][2]);
      END IF;
    END LOOP;
    RETURN array_to_string(v_fields, ' ');
  END IF;
  RAISE EXCEPTION 'invalid schedule "%"', p_schedule
    USING ERRCODE = 'invalid_parameter_value',
          HINT = 'Use a duration such as ''30s'', ''5m'' or ''1h30m'', a cron expression such as '
                 '''*/5 * * * *'', or ''calculated''.';
END
$fn$;

CREATE FUNCTION pgtrickle._normalize_mode(p_mode text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v text := upper(btrim(p_mode));
BEGIN
  IF v IN ('FULL', 'DIFFERENTIAL', 'AUTO') THEN
    RETURN v;
  END IF;
  IF v = 'IMMEDIATE' THEN
    RAISE EXCEPTION 'refresh mode IMMEDIATE is not supported yet' USING ERRCODE = 'feature_not_supported',
      HINT = 'Use ''DIFFERENTIAL'' with a short schedule such as ''1s''.';
  END IF;
  RAISE EXCEPTION 'invalid refresh mode "%"', p_mode USING ERRCODE = 'invalid_parameter_value',
    HINT = 'Valid refresh modes are ''AUTO'', ''DIFFERENTIAL'' and ''FULL''.';
END
$fn$;

-- Splits a possibly qualified, possibly quoted name the way PostgreSQL reads identifiers.
CREATE FUNCTION pgtrickle._split_name(p_name text, OUT schema_name name, OUT rel_name name)
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
  v_parts text[] := parse_ident(p_name);
BEGIN
  CASE array_length(v_parts, 1)
    WHEN 1 THEN
      schema_name := current_schema();
      rel_name := v_parts[1];
      IF schema_name IS NULL THEN
        RAISE EXCEPTION 'no schema has been selected to create in' USING ERRCODE = 'invalid_schema_name';
      END IF;
    WHEN 2 THEN
      schema_name := v_parts[1];
      rel_name := v_parts[2];
    ELSE
      RAISE EXCEPTION 'improper qualified name (too many dotted names): %', p_name
        USING ERRCODE = 'syntax_error';
  END CASE;
END
$fn$;

-- Finds a stream table by name, unqualified names through the caller's search_path.
CREATE FUNCTION pgtrickle._resolve(p_name text)
RETURNS bigint
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
  v_parts text[] := parse_ident(p_name);
  v_id bigint;
BEGIN
  IF array_length(v_parts, 1) = 2 THEN
    SELECT st.pgt_id INTO v_id FROM pgtrickle.pgt_stream_tables st
     WHERE st.pgt_schema = v_parts[1] AND st.pgt_name = v_parts[2];
  ELSIF array_length(v_parts, 1) = 1 THEN
    SELECT st.pgt_id INTO v_id
      FROM unnest(current_schemas(false)) WITH ORDINALITY AS s(nsp, ord)
      JOIN pgtrickle.pgt_stream_tables st ON st.pgt_schema = s.nsp AND st.pgt_name = v_parts[1]
     ORDER BY s.ord LIMIT 1;
  ELSE
    RAISE EXCEPTION 'improper qualified name (too many dotted names): %', p_name USING ERRCODE = 'syntax_error';
  END IF;
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'stream table "%" does not exist', p_name USING ERRCODE = 'undefined_table',
      HINT = 'SELECT name FROM pgtrickle.pgt_status() lists the stream tables.';
  END IF;
  RETURN v_id;
END
$fn$;

CREATE FUNCTION pgtrickle._assert_owner(p_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_name name;
  v_owner oid;
BEGIN
  SELECT st.pgt_name, st.pgt_owner INTO v_name, v_owner FROM pgtrickle.pgt_stream_tables st WHERE st.pgt_id = p_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stream table with id % does not exist', p_id USING ERRCODE = 'undefined_table';
  END IF;
  IF NOT pg_has_role(pgtrickle._caller(), v_owner, 'USAGE') THEN
    RAISE EXCEPTION 'must be owner of stream table "%"', v_name USING ERRCODE = 'insufficient_privilege';
  END IF;
END
$fn$;

CREATE FUNCTION pgtrickle._notify_catalog(p_op text, p_id bigint, p_schema name, p_name name)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_notify('pg_trickle_catalog',
    json_build_object('op', p_op, 'pgt_id', p_id, 'schema', p_schema, 'name', p_name)::text)
$$;

-- Drops capture from sources that no stream table reads through a trigger any more.
CREATE FUNCTION pgtrickle._gc_cdc(p_relids oid[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  PERFORM pgtrickle._drop_cdc(r)
     FROM unnest(coalesce(p_relids, '{}')) AS r
    WHERE NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies d
                       WHERE d.source_relid = r AND d.cdc_mode = 'TRIGGER');
END
$fn$;

-- Records what the probe view (the defining query, resolved by PostgreSQL) reads: views are
-- followed down to base tables, and every base table gets change capture.
CREATE FUNCTION pgtrickle._record_dependencies(p_id bigint, p_probe oid)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_self   name;
  v_old    oid[];
  v_down   oid[];
  r        record;
BEGIN
  SELECT st.pgt_name INTO v_self FROM pgtrickle.pgt_stream_tables st WHERE st.pgt_id = p_id;
  SELECT array_agg(d.source_relid) INTO v_old
    FROM pgtrickle.pgt_dependencies d WHERE d.pgt_id = p_id AND d.cdc_mode = 'TRIGGER';
  DELETE FROM pgtrickle.pgt_dependencies d WHERE d.pgt_id = p_id;

  -- Reading this stream table or anything downstream of it would close a cycle.
  WITH RECURSIVE down(id) AS (
    SELECT p_id
    UNION
    SELECT d.pgt_id FROM down
      JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id = down.id
      JOIN pgtrickle.pgt_dependencies d ON d.source_relid = s.pgt_relid)
  SELECT array_agg(s.pgt_relid) INTO v_down
    FROM down JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id = down.id;

  FOR r IN
    WITH RECURSIVE rules(rule_oid, view_oid) AS (
      SELECT rw.oid, rw.ev_class FROM pg_rewrite rw WHERE rw.ev_class = p_probe
      UNION
      SELECT rw.oid, rw.ev_class
        FROM rules
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rules.rule_oid
                        AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> rules.view_oid
        JOIN pg_class c ON c.oid = d.refobjid AND c.relkind = 'v'
        JOIN pg_rewrite rw ON rw.ev_class = c.oid),
    refs AS (
      SELECT d.refobjid AS relid,
             array_agg(DISTINCT a.attname) FILTER (WHERE a.attname IS NOT NULL) AS cols
        FROM rules
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rules.rule_oid
                        AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> rules.view_oid
        LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid AND d.refobjsubid > 0
       GROUP BY d.refobjid)
    SELECT c.oid, c.relkind, c.relpersistence, n.nspname, refs.cols, st.pgt_id IS NOT NULL AS is_st
      FROM refs
      JOIN pg_class c ON c.oid = refs.relid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pgtrickle.pgt_stream_tables st ON st.pgt_relid = c.oid
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
     ORDER BY c.oid
  LOOP
    IF r.relpersistence = 't' THEN
      RAISE EXCEPTION 'stream table "%" cannot read temporary relation %', v_self, pgtrickle._relname(r.oid)
        USING ERRCODE = 'feature_not_supported';
    END IF;
    IF r.nspname IN ('pgtrickle', 'pgtrickle_changes') THEN
      RAISE EXCEPTION 'stream table "%" cannot read pgtrickle''s own relation %', v_self, pgtrickle._relname(r.oid)
        USING ERRCODE = 'feature_not_supported';
    END IF;
    IF r.oid = ANY (v_down) THEN
      RAISE EXCEPTION 'stream table "%" cannot read %: that would make a cycle', v_self, pgtrickle._relname(r.oid)
        USING ERRCODE = 'invalid_object_definition',
              DETAIL = format('%s is stream table "%s" or depends on it.', pgtrickle._relname(r.oid), v_self);
    END IF;
    INSERT INTO pgtrickle.pgt_dependencies (pgt_id, source_relid, source_type, cdc_mode, columns_used)
    VALUES (p_id, r.oid,
            CASE WHEN r.is_st THEN 'STREAM_TABLE'
                 WHEN r.relkind IN ('r', 'p') THEN 'TABLE'
                 WHEN r.relkind = 'v' THEN 'VIEW'
                 WHEN r.relkind = 'm' THEN 'MATVIEW'
                 ELSE 'FOREIGN_TABLE' END,
            CASE WHEN r.relkind IN ('r', 'p') THEN 'TRIGGER' ELSE 'NONE' END,
            r.cols);
    IF r.relkind IN ('r', 'p') THEN
      PERFORM pgtrickle._ensure_cdc(r.oid);
    END IF;
  END LOOP;

  PERFORM pgtrickle._gc_cdc(v_old);
END
$fn$;

-- A DIFFERENTIAL stream table needs change capture on every base relation it reads.
CREATE FUNCTION pgtrickle._check_mode(p_id bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_src oid;
BEGIN
  SELECT d.source_relid INTO v_src
    FROM pgtrickle.pgt_stream_tables st
    JOIN pgtrickle.pgt_dependencies d ON d.pgt_id = st.pgt_id
   WHERE st.pgt_id = p_id AND st.refresh_mode = 'DIFFERENTIAL'
     AND d.source_type IN ('MATVIEW', 'FOREIGN_TABLE')
   LIMIT 1;
  IF v_src IS NOT NULL THEN
    RAISE EXCEPTION 'stream table cannot be DIFFERENTIAL: its source % has no change capture', pgtrickle._relname(v_src)
      USING ERRCODE = 'feature_not_supported',
            HINT = 'Materialized views and foreign tables can only be read in FULL or AUTO mode.';
  END IF;
END
$fn$;

-- The probe is a temporary view of the caller holding the defining query: PostgreSQL has
-- resolved every name in it, and pg_get_viewdef under an empty search_path gives it back
-- schema-qualified, so later refreshes do not depend on anyone's search_path.
CREATE FUNCTION pgtrickle._probe_query(p_probe oid)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_ok boolean;
BEGIN
  SELECT c.relkind = 'v' AND c.relnamespace = pg_my_temp_schema() INTO v_ok FROM pg_class c WHERE c.oid = p_probe;
  IF v_ok IS NOT TRUE THEN
    RAISE EXCEPTION 'relation % is not a probe view of this session', p_probe USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN regexp_replace(pg_get_viewdef(p_probe, false), ';\s*$', '');
END
$fn$;

-- What the probe reads directly must be readable by the caller: views stand for their owner's
-- rights as in PostgreSQL, so only this first level is checked here.
CREATE FUNCTION pgtrickle._check_probe_privileges(p_probe oid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_caller oid := pgtrickle._caller();
  r record;
BEGIN
  FOR r IN
    SELECT d.refobjid AS relid, array_agg(d.refobjsubid) AS subids
      FROM pg_rewrite rw
      JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                      AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> p_probe
      JOIN pg_class c ON c.oid = d.refobjid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
     WHERE rw.ev_class = p_probe
     GROUP BY d.refobjid
  LOOP
    IF NOT has_table_privilege(v_caller, r.relid, 'SELECT')
       AND (0 = ANY (r.subids)
            OR EXISTS (SELECT 1 FROM unnest(r.subids) s WHERE NOT has_column_privilege(v_caller, r.relid, s::smallint, 'SELECT')))
    THEN
      RAISE EXCEPTION 'permission denied for table %', pgtrickle._relname(r.relid) USING ERRCODE = 'insufficient_privilege';
    END IF;
  END LOOP;
END
$fn$;

CREATE FUNCTION pgtrickle._register(p_storage oid, p_probe oid, p_original text, p_schedule text, p_mode text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_caller oid := pgtrickle._caller();
  v_rel record;
  v_id bigint;
BEGIN
  SELECT c.relname, n.nspname, c.relowner, c.relkind, c.relpersistence INTO v_rel
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_storage;
  IF NOT FOUND OR v_rel.relkind <> 'r' OR v_rel.relpersistence = 't' THEN
    RAISE EXCEPTION 'storage of a stream table must be a permanent table, not %', pgtrickle._relname(p_storage)
      USING ERRCODE = 'wrong_object_type';
  END IF;
  IF NOT pg_has_role(v_caller, v_rel.relowner, 'USAGE') THEN
    RAISE EXCEPTION 'must be owner of table %', v_rel.relname USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM pgtrickle._check_probe_privileges(p_probe);

  INSERT INTO pgtrickle.pgt_stream_tables
    (pgt_relid, pgt_schema, pgt_name, pgt_owner, original_query, defining_query, schedule, refresh_mode)
  VALUES (p_storage, v_rel.nspname, v_rel.relname, v_rel.relowner, p_original, pgtrickle._probe_query(p_probe),
          pgtrickle._normalize_schedule(p_schedule), pgtrickle._normalize_mode(p_mode))
  RETURNING pgt_id INTO v_id;

  PERFORM pgtrickle._record_dependencies(v_id, p_probe);
  PERFORM pgtrickle._check_mode(v_id);
  PERFORM pgtrickle._notify_catalog('create', v_id, v_rel.nspname, v_rel.relname);
  RETURN v_id;
END
$fn$;

-- Storage columns in the probe's order, types and collations, ready for CREATE TABLE.
CREATE FUNCTION pgtrickle._probe_columns(p_probe oid)
RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT string_agg(
           format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod))
             || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                     THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END,
           ', ' ORDER BY a.attnum)
    FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
   WHERE a.attrelid = p_probe AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- Creates the probe view as the caller; PostgreSQL's own errors surface unchanged.
CREATE FUNCTION pgtrickle._create_probe(p_query text)
RETURNS oid
LANGUAGE plpgsql
AS $fn$
BEGIN
  IF to_regclass('pg_temp.__pgt_probe') IS NOT NULL THEN
    DROP VIEW pg_temp.__pgt_probe;
  END IF;
  EXECUTE 'CREATE TEMPORARY VIEW __pgt_probe AS ' || regexp_replace(p_query, ';\s*$', '');
  -- Runs the planner and executor start as the caller: privileges are checked here.
  EXECUTE 'SELECT FROM pg_temp.__pgt_probe LIMIT 0';
  RETURN 'pg_temp.__pgt_probe'::regclass::oid;
END
$fn$;

CREATE FUNCTION pgtrickle.create_stream_table(
  name text,
  query text,
  schedule text DEFAULT '1m',
  refresh_mode text DEFAULT 'AUTO',
  initialize boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
  v_schema name;
  v_name name;
  v_probe oid;
  v_storage oid;
  v_id bigint;
BEGIN
  SELECT s.schema_name, s.rel_name INTO v_schema, v_name FROM pgtrickle._split_name(name) s;
  PERFORM pgtrickle._normalize_schedule(schedule);
  PERFORM pgtrickle._normalize_mode(refresh_mode);
  IF EXISTS (SELECT 1 FROM pgtrickle.pgt_stream_tables st WHERE st.pgt_schema = v_schema AND st.pgt_name = v_name) THEN
    RAISE EXCEPTION 'stream table "%" already exists', v_name USING ERRCODE = 'duplicate_table',
      HINT = 'Use pgtrickle.alter_stream_table() to change it, or drop it first.';
  END IF;

  v_probe := pgtrickle._create_probe(query);
  EXECUTE format('CREATE TABLE %I.%I (%s)', v_schema, v_name, pgtrickle._probe_columns(v_probe));
  v_storage := format('%I.%I', v_schema, v_name)::regclass::oid;
  v_id := pgtrickle._register(v_storage, v_probe, query, schedule, refresh_mode);
  DROP VIEW pg_temp.__pgt_probe;

  IF initialize THEN
    PERFORM pgtrickle._refresh(v_id, NULL, 'INITIAL');
  END IF;
END
$fn$;

COMMENT ON FUNCTION pgtrickle.create_stream_table(text, text, text, text, boolean) IS
  'Creates a stream table: a table kept equal to the result of query, refreshed on schedule.';

-- Takes the refresh lock (I1: FOR UPDATE NOWAIT, a busy stream table is skipped, not queued)
-- and checks the fencing epoch. Returns no row when another refresh holds the lock.
CREATE FUNCTION pgtrickle._refresh_begin(p_id bigint, p_epoch bigint)
RETURNS TABLE (
  schema_name name, rel_name name, owner_name name, refresh_mode text, needs_reinit boolean,
  frontier pg_snapshot, frontier_xid xid8, defining_query text, column_list text,
  full_sql text, delta_sql text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  st pgtrickle.pgt_stream_tables;
BEGIN
  PERFORM pgtrickle._assert_owner(p_id);
  BEGIN
    SELECT * INTO st FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = p_id FOR UPDATE NOWAIT;
  EXCEPTION WHEN lock_not_available THEN
    RETURN;
  END;
  IF p_epoch IS NOT NULL AND p_epoch <> st.fencing_epoch THEN
    RAISE EXCEPTION 'stale fencing epoch for stream table "%": holding %, current %', st.pgt_name, p_epoch, st.fencing_epoch
      USING ERRCODE = 'PT001', HINT = 'Another node was granted this stream table; this node must give it up.';
  END IF;
  schema_name := st.pgt_schema;
  rel_name := st.pgt_name;
  owner_name := (SELECT r.rolname FROM pg_roles r WHERE r.oid = st.pgt_owner);
  refresh_mode := st.refresh_mode;
  needs_reinit := st.needs_reinit;
  frontier := st.frontier;
  frontier_xid := st.frontier_xid;
  defining_query := st.defining_query;
  SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) INTO column_list
    FROM pg_attribute a
   WHERE a.attrelid = st.pgt_relid AND a.attnum > 0 AND NOT a.attisdropped AND a.attname NOT LIKE '\_\_pgt\_%';
  SELECT p.full_sql, p.delta_sql INTO full_sql, delta_sql FROM pgtrickle.pgt_plans p WHERE p.pgt_id = p_id;
  RETURN NEXT;
END
$fn$;

-- Whether pending changes exceed pgtrickle.differential_max_change_ratio (default 0.15) of the
-- rows of all captured sources together: past that, recomputing is cheaper than applying a
-- delta. Below 10,000 source rows both are cheap and the delta wins (it rewrites less for the
-- stream tables downstream); sources never analyzed (reltuples < 0) count as unknown.
CREATE FUNCTION pgtrickle._too_many_changes(p_id bigint, p_frontier pg_snapshot)
RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_ratio float8 := coalesce(nullif(current_setting('pgtrickle.differential_max_change_ratio', true), '')::float8, 0.15);
  v_total float8;
  v_limit bigint;
  v_pending bigint := 0;
  v_n bigint;
  src record;
BEGIN
  SELECT sum(c.reltuples) FILTER (WHERE c.reltuples >= 0) INTO v_total
    FROM pgtrickle.pgt_dependencies d JOIN pg_class c ON c.oid = d.source_relid
   WHERE d.pgt_id = p_id AND d.cdc_mode = 'TRIGGER';
  IF v_total IS NULL OR v_total < 10000 THEN
    RETURN false;
  END IF;
  v_limit := (v_total * v_ratio)::bigint;
  FOR src IN
    SELECT ct.buffer_name
      FROM pgtrickle.pgt_dependencies d
      JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = d.source_relid
     WHERE d.pgt_id = p_id AND d.cdc_mode = 'TRIGGER'
  LOOP
    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM pgtrickle_changes.%I WHERE xid >= pg_snapshot_xmin($1) LIMIT $2) x',
                   src.buffer_name)
      INTO v_n USING p_frontier, v_limit - v_pending + 1;
    v_pending := v_pending + v_n;
    IF v_pending > v_limit THEN
      RETURN true;
    END IF;
  END LOOP;
  RETURN false;
END
$fn$;

-- Whether any captured source has changes the frontier has not seen. Changes of transactions
-- still in progress count: the refresh that follows consumes nothing, which is harmless.
CREATE FUNCTION pgtrickle._has_pending(p_id bigint, p_frontier pg_snapshot, p_frontier_xid xid8)
RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_found boolean;
  src record;
BEGIN
  FOR src IN
    SELECT ct.buffer_name
      FROM pgtrickle.pgt_dependencies d
      JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = d.source_relid
     WHERE d.pgt_id = p_id AND d.cdc_mode = 'TRIGGER'
  LOOP
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM pgtrickle_changes.%I
                     WHERE xid >= pg_snapshot_xmin($1) AND NOT pgtrickle._seen(xid, $1, $2))', src.buffer_name)
      INTO v_found USING p_frontier, p_frontier_xid;
    IF v_found THEN
      RETURN true;
    END IF;
  END LOOP;
  -- Materialized views and foreign tables cannot tell whether they changed.
  RETURN EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies d
                  WHERE d.pgt_id = p_id AND d.source_type IN ('MATVIEW', 'FOREIGN_TABLE'));
END
$fn$;

-- Counts what this refresh consumed (I2: visible in the new frontier, not in the previous one)
-- unless the delta statement already did, advances the frontier, writes history and trims
-- change buffers every dependent has passed.
CREATE FUNCTION pgtrickle._refresh_end(
  p_id bigint, p_snapshot pg_snapshot, p_action text, p_inserted bigint, p_deleted bigint,
  p_initiated_by text, p_start timestamptz, p_consumed bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  st pgtrickle.pgt_stream_tables;
  v_own xid8 := pg_current_xact_id_if_assigned();
  v_consumed bigint := coalesce(p_consumed, 0);
  v_n bigint;
  v_refresh_id bigint;
  src record;
BEGIN
  PERFORM pgtrickle._assert_owner(p_id);
  SELECT * INTO st FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = p_id FOR UPDATE;

  FOR src IN
    SELECT ct.source_relid, ct.buffer_name
      FROM pgtrickle.pgt_dependencies d
      JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = d.source_relid
     WHERE d.pgt_id = p_id AND d.cdc_mode = 'TRIGGER' AND p_consumed IS NULL
  LOOP
    EXECUTE format(
      'SELECT count(*) FROM pgtrickle_changes.%I
        WHERE ($3 IS NULL OR xid >= pg_snapshot_xmin($3))
          AND pgtrickle._seen(xid, $1, $2) AND NOT pgtrickle._seen(xid, $3, $4)', src.buffer_name)
      INTO v_n USING p_snapshot, v_own, st.frontier, st.frontier_xid;
    v_consumed := v_consumed + v_n;
  END LOOP;

  UPDATE pgtrickle.pgt_stream_tables s
     SET frontier = p_snapshot, frontier_xid = v_own, is_populated = true, needs_reinit = false,
         status = CASE WHEN s.status IN ('INITIALIZING', 'ERROR') THEN 'ACTIVE' ELSE s.status END,
         consecutive_errors = 0, last_error = NULL, last_error_at = NULL,
         data_timestamp = now(), last_refresh_at = clock_timestamp(), updated_at = now()
   WHERE s.pgt_id = p_id;

  INSERT INTO pgtrickle.pgt_refresh_history
    (pgt_id, start_time, end_time, action, status, initiated_by, rows_inserted, rows_deleted,
     changes_consumed, frontier, fencing_epoch)
  VALUES (p_id, p_start, clock_timestamp(), p_action, 'COMPLETED', p_initiated_by, p_inserted, p_deleted,
          v_consumed, p_snapshot, st.fencing_epoch)
  RETURNING refresh_id INTO v_refresh_id;

  -- A change is gone for good once it lies below the xmin of every dependent's frontier.
  FOR src IN
    SELECT ct.buffer_name, min(pg_snapshot_xmin(s.frontier)) AS horizon, bool_and(s.frontier IS NOT NULL) AS all_set
      FROM pgtrickle.pgt_dependencies mine
      JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = mine.source_relid
      JOIN pgtrickle.pgt_dependencies d ON d.source_relid = ct.source_relid AND d.cdc_mode = 'TRIGGER'
      JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id = d.pgt_id
     WHERE mine.pgt_id = p_id AND mine.cdc_mode = 'TRIGGER'
     GROUP BY ct.buffer_name
  LOOP
    IF src.all_set THEN
      EXECUTE format('DELETE FROM pgtrickle_changes.%I WHERE xid < $1', src.buffer_name) USING src.horizon;
    END IF;
  END LOOP;

  PERFORM pg_notify('pg_trickle_refresh', json_build_object(
    'pgt_id', p_id, 'schema', st.pgt_schema, 'name', st.pgt_name, 'action', p_action,
    'rows_inserted', p_inserted, 'rows_deleted', p_deleted, 'changes_consumed', v_consumed,
    'refresh_id', v_refresh_id)::text);
  RETURN v_refresh_id;
END
$fn$;

-- One refresh, in the caller's transaction (I1). The defining query runs as the stream
-- table's owner, like REFRESH MATERIALIZED VIEW, with a fixed search_path so that it means what
-- it meant when it was created. With a compiled plan, the delta is applied in one statement;
-- without one, after a TRUNCATE of a source, or with too many changes, everything is recomputed.
-- Returns the refresh_id, or NULL when skipped (nothing changed, or another refresh is running).
CREATE FUNCTION pgtrickle._refresh(p_id bigint, p_epoch bigint, p_initiated_by text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  r record;
  v_start timestamptz := clock_timestamp();
  v_role text := current_setting('role');
  v_jit text := current_setting('jit');
  v_action text;
  v_deleted bigint;
  v_inserted bigint;
  v_snapshot pg_snapshot;
  v_truncated boolean;
  v_consumed bigint;
BEGIN
  SELECT * INTO r FROM pgtrickle._refresh_begin(p_id, p_epoch);
  IF NOT FOUND THEN
    SELECT st.pgt_name INTO r FROM pgtrickle.pgt_stream_tables st WHERE st.pgt_id = p_id;
    RAISE NOTICE 'refresh skipped for "%": another refresh is in progress', r.pgt_name;
    RETURN NULL;
  END IF;
  IF r.frontier IS NOT NULL AND NOT r.needs_reinit
     AND NOT pgtrickle._has_pending(p_id, r.frontier, r.frontier_xid) THEN
    RAISE NOTICE 'refresh skipped for "%": no changes detected', r.rel_name;
    RETURN NULL;
  END IF;
  IF r.owner_name <> current_user THEN
    PERFORM set_config('role', r.owner_name, true);
  END IF;
  -- Delta statements are large but touch few rows: JIT compiling them can cost more than running them.
  PERFORM set_config('jit', 'off', true);

  IF r.delta_sql IS NOT NULL AND r.refresh_mode <> 'FULL' AND NOT r.needs_reinit AND r.frontier IS NOT NULL
     AND NOT pgtrickle._too_many_changes(p_id, r.frontier) THEN
    EXECUTE r.delta_sql INTO v_snapshot, v_inserted, v_deleted, v_truncated, v_consumed
      USING r.frontier, r.frontier_xid;
    IF NOT v_truncated THEN
      v_action := 'DIFFERENTIAL';
    END IF;
  END IF;

  IF v_action IS NULL THEN
    EXECUTE format('DELETE FROM %I.%I', r.schema_name, r.rel_name);
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    -- The snapshot is taken in the same statement that reads the sources, so the frontier is
    -- exactly what this refresh saw (I2), whatever the isolation level.
    EXECUTE format('WITH ins AS (%s RETURNING 1) SELECT pg_current_snapshot(), (SELECT count(*) FROM ins)',
                   coalesce(r.full_sql, format('INSERT INTO %I.%I (%s) SELECT * FROM (%s) q',
                                               r.schema_name, r.rel_name, r.column_list, r.defining_query)))
      INTO v_snapshot, v_inserted;
    v_action := CASE WHEN r.needs_reinit THEN 'REINITIALIZE' ELSE 'FULL' END;
    v_consumed := NULL;
  END IF;

  PERFORM set_config('role', v_role, true);
  PERFORM set_config('jit', v_jit, true);
  RETURN pgtrickle._refresh_end(p_id, v_snapshot, v_action, v_inserted, v_deleted, p_initiated_by, v_start, v_consumed);
END
$fn$;

CREATE FUNCTION pgtrickle.refresh_stream_table(name text)
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
  PERFORM pgtrickle._refresh(pgtrickle._resolve(name), NULL, 'MANUAL');
END
$fn$;

COMMENT ON FUNCTION pgtrickle.refresh_stream_table(text) IS
  'Refreshes a stream table now, in the current transaction.';

CREATE FUNCTION pgtrickle._alter(p_id bigint, p_schedule text, p_mode text, p_status text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  st pgtrickle.pgt_stream_tables;
BEGIN
  PERFORM pgtrickle._assert_owner(p_id);
  IF p_status IS NOT NULL AND upper(btrim(p_status)) NOT IN ('ACTIVE', 'SUSPENDED') THEN
    RAISE EXCEPTION 'invalid status "%"', p_status USING ERRCODE = 'invalid_parameter_value',
      HINT = 'A stream table can be set to ''ACTIVE'' or ''SUSPENDED''.';
  END IF;
  UPDATE pgtrickle.pgt_stream_tables s
     SET schedule = CASE WHEN p_schedule IS NULL THEN s.schedule ELSE pgtrickle._normalize_schedule(p_schedule) END,
         refresh_mode = CASE WHEN p_mode IS NULL THEN s.refresh_mode ELSE pgtrickle._normalize_mode(p_mode) END,
         status = coalesce(upper(btrim(p_status)), s.status),
         updated_at = now()
   WHERE s.pgt_id = p_id
  RETURNING * INTO st;
  PERFORM pgtrickle._check_mode(p_id);
  PERFORM pgtrickle._notify_catalog('alter', p_id, st.pgt_schema, st.pgt_name);
END
$fn$;

CREATE FUNCTION pgtrickle._alter_query(p_id bigint, p_probe oid, p_original text, p_storage oid)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  st pgtrickle.pgt_stream_tables;
BEGIN
  PERFORM pgtrickle._assert_owner(p_id);
  PERFORM pgtrickle._check_probe_privileges(p_probe);
  IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = p_storage AND c.relkind = 'r'
                    AND pg_has_role(pgtrickle._caller(), c.relowner, 'USAGE')) THEN
    RAISE EXCEPTION 'must be owner of table %', pgtrickle._relname(p_storage) USING ERRCODE = 'insufficient_privilege';
  END IF;
  UPDATE pgtrickle.pgt_stream_tables s
     SET original_query = p_original, defining_query = pgtrickle._probe_query(p_probe), pgt_relid = p_storage,
         needs_reinit = true, is_populated = false, frontier = NULL, frontier_xid = NULL,
         effective_mode = NULL, fallback_reason = NULL, updated_at = now()
   WHERE s.pgt_id = p_id
  RETURNING * INTO st;
  DELETE FROM pgtrickle.pgt_plans p WHERE p.pgt_id = p_id;
  PERFORM pgtrickle._record_dependencies(p_id, p_probe);
  PERFORM pgtrickle._check_mode(p_id);
  PERFORM pgtrickle._notify_catalog('alter', p_id, st.pgt_schema, st.pgt_name);
END
$fn$;

CREATE FUNCTION pgtrickle.alter_stream_table(
  name text,
  query text DEFAULT NULL,
  schedule text DEFAULT NULL,
  refresh_mode text DEFAULT NULL,
  status text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
  v_id bigint := pgtrickle._resolve(name);
  st pgtrickle.pgt_stream_tables;
  v_probe oid;
  v_cols text;
  v_storage oid;
BEGIN
  PERFORM pgtrickle._assert_owner(v_id);
  IF schedule IS NOT NULL OR refresh_mode IS NOT NULL OR status IS NOT NULL THEN
    PERFORM pgtrickle._alter(v_id, schedule, refresh_mode, status);
  END IF;
  IF query IS NULL THEN
    RETURN;
  END IF;

  SELECT * INTO st FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = v_id;
  v_probe := pgtrickle._create_probe(query);
  v_cols := pgtrickle._probe_columns(v_probe);
  v_storage := st.pgt_relid;
  PERFORM pgtrickle._drop_hidden_columns(v_id);
  IF v_cols IS DISTINCT FROM pgtrickle._probe_columns(st.pgt_relid) THEN
    IF EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies d WHERE d.source_relid = st.pgt_relid) THEN
      RAISE EXCEPTION 'cannot change the columns of stream table "%" because other stream tables read it', st.pgt_name
        USING ERRCODE = 'dependent_objects_still_exist',
              HINT = 'Drop or alter the dependent stream tables first, or keep the column list unchanged.';
    END IF;
    EXECUTE format('DROP TABLE %I.%I', st.pgt_schema, st.pgt_name);
    EXECUTE format('CREATE TABLE %I.%I (%s)', st.pgt_schema, st.pgt_name, v_cols);
    v_storage := format('%I.%I', st.pgt_schema, st.pgt_name)::regclass::oid;
  END IF;
  PERFORM pgtrickle._alter_query(v_id, v_probe, query, v_storage);
  DROP VIEW pg_temp.__pgt_probe;
  PERFORM pgtrickle._refresh(v_id, NULL, 'MANUAL');
END
$fn$;

COMMENT ON FUNCTION pgtrickle.alter_stream_table(text, text, text, text, text) IS
  'Changes the query, schedule, refresh mode or status (ACTIVE/SUSPENDED) of a stream table.';

-- Removes one stream table: catalog rows (dependencies and history cascade), storage, and
-- capture on sources nobody reads any more.
CREATE FUNCTION pgtrickle._unregister(p_id bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  st pgtrickle.pgt_stream_tables;
  v_sources oid[];
BEGIN
  SELECT array_agg(d.source_relid) INTO v_sources
    FROM pgtrickle.pgt_dependencies d WHERE d.pgt_id = p_id AND d.cdc_mode = 'TRIGGER';
  DELETE FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = p_id RETURNING * INTO st;
  PERFORM pgtrickle._drop_cdc(st.pgt_relid);
  IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = st.pgt_relid) THEN
    EXECUTE 'DROP TABLE ' || pgtrickle._relname(st.pgt_relid);
  END IF;
  PERFORM pgtrickle._gc_cdc(v_sources);
  PERFORM pgtrickle._notify_catalog('drop', p_id, st.pgt_schema, st.pgt_name);
END
$fn$;

CREATE FUNCTION pgtrickle._drop(p_id bigint, p_cascade boolean)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_name name;
  v_order bigint[];
  v_detail text;
  v_id bigint;
BEGIN
  PERFORM pgtrickle._assert_owner(p_id);
  SELECT st.pgt_name INTO v_name FROM pgtrickle.pgt_stream_tables st WHERE st.pgt_id = p_id;

  -- Everything downstream, deepest first, so each stream table goes before what it reads.
  WITH RECURSIVE down(id, depth) AS (
    SELECT p_id, 0
    UNION ALL
    SELECT d.pgt_id, down.depth + 1
      FROM down
      JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id = down.id
      JOIN pgtrickle.pgt_dependencies d ON d.source_relid = s.pgt_relid)
  SELECT array_agg(id ORDER BY depth DESC, id) INTO v_order
    FROM (SELECT id, max(depth) AS depth FROM down GROUP BY id) x;

  IF array_length(v_order, 1) > 1 AND NOT p_cascade THEN
    SELECT string_agg(format('stream table %s depends on stream table %s',
                             pgtrickle._relname(dep.pgt_relid), pgtrickle._relname(src.pgt_relid)),
                      E'\n' ORDER BY dep.pgt_schema, dep.pgt_name)
      INTO v_detail
      FROM pgtrickle.pgt_stream_tables dep
      JOIN pgtrickle.pgt_dependencies d ON d.pgt_id = dep.pgt_id
      JOIN pgtrickle.pgt_stream_tables src ON src.pgt_relid = d.source_relid
     WHERE dep.pgt_id = ANY (v_order) AND src.pgt_id = ANY (v_order);
    RAISE EXCEPTION 'cannot drop stream table "%" because other objects depend on it', v_name
      USING ERRCODE = 'dependent_objects_still_exist', DETAIL = v_detail,
            HINT = 'Use pgtrickle.drop_stream_table(name, cascade => true) to drop the dependent stream tables too.';
  END IF;

  FOREACH v_id IN ARRAY v_order LOOP
    IF v_id <> p_id THEN
      RAISE NOTICE 'drop cascades to stream table %',
        (SELECT pgtrickle._relname(s.pgt_relid) FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = v_id);
    END IF;
    PERFORM pgtrickle._unregister(v_id);
  END LOOP;
END
$fn$;

CREATE FUNCTION pgtrickle.drop_stream_table(name text, "cascade" boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
  PERFORM pgtrickle._drop(pgtrickle._resolve(name), "cascade");
END
$fn$;

COMMENT ON FUNCTION pgtrickle.drop_stream_table(text, boolean) IS
  'Drops a stream table; with cascade => true also the stream tables that read it.';

-- Read-your-writes: the DML and the refresh share one transaction, so the refresh consumes the
-- DML's own changes (the frontier keeps the transaction's xid, see _seen).
CREATE FUNCTION pgtrickle.write_and_refresh(dml text, name text)
RETURNS bigint
LANGUAGE plpgsql
AS $fn$
DECLARE
  v_id bigint := pgtrickle._resolve(name);
  v_rows bigint;
BEGIN
  EXECUTE dml;
  GET DIAGNOSTICS v_rows = ROW_COUNT;
  PERFORM pgtrickle._refresh(v_id, NULL, 'MANUAL');
  RETURN v_rows;
END
$fn$;

COMMENT ON FUNCTION pgtrickle.write_and_refresh(text, text) IS
  'Runs a DML statement and refreshes a stream table in the same transaction; returns the rows the DML affected.';

-- Keeps pgt_refresh_history to pgtrickle.history_retention_days (default 30). Nodes run it daily;
-- it is safe to run at any time.
CREATE FUNCTION pgtrickle.cleanup_history()
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_days numeric := coalesce(nullif(current_setting('pgtrickle.history_retention_days', true), '')::numeric, 30);
  v_deleted bigint;
BEGIN
  IF v_days < 0 THEN
    RAISE EXCEPTION 'invalid pgtrickle.history_retention_days: %', v_days USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Use a number of days, 0 or more.';
  END IF;
  DELETE FROM pgtrickle.pgt_refresh_history h WHERE h.start_time < now() - v_days * interval '1 day';
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  RETURN v_deleted;
END
$fn$;

REVOKE ALL ON FUNCTION pgtrickle.cleanup_history() FROM PUBLIC;

COMMENT ON FUNCTION pgtrickle.cleanup_history() IS
  'Deletes refresh history older than pgtrickle.history_retention_days (default 30); returns how many rows.';

-- Hidden columns belong to a compiled plan; they go when the plan goes.
CREATE FUNCTION pgtrickle._drop_hidden_columns(p_id bigint)
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
  v_relid oid;
  v_ddl text;
BEGIN
  PERFORM pgtrickle._assert_owner(p_id);
  SELECT st.pgt_relid INTO v_relid FROM pgtrickle.pgt_stream_tables st WHERE st.pgt_id = p_id;
  SELECT string_agg(format('DROP COLUMN %I', a.attname), ', ') INTO v_ddl
    FROM pg_catalog.pg_attribute a
   WHERE a.attrelid = v_relid AND a.attnum > 0 AND NOT a.attisdropped AND a.attname LIKE '\_\_pgt\_%';
  IF v_ddl IS NOT NULL THEN
    EXECUTE format('ALTER TABLE %s %s', pgtrickle._relname(v_relid), v_ddl);
  END IF;
END
$fn$;

-- Installs a compiled plan (from a node): hidden columns are added as the caller, who must own
-- the stream table; the next refresh recomputes everything once to fill them.
CREATE FUNCTION pgtrickle._install_plan(
  p_id bigint, p_strategy text, p_hidden_columns jsonb, p_index_columns name[], p_full_sql text, p_delta_sql text)
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
  v_relid oid;
  v_ddl text;
BEGIN
  PERFORM pgtrickle._drop_hidden_columns(p_id);
  SELECT st.pgt_relid INTO v_relid FROM pgtrickle.pgt_stream_tables st WHERE st.pgt_id = p_id;
  -- ::regtype accepts only a type that exists and prints it quoted.
  SELECT string_agg(format('ADD COLUMN %I %s', c->>'name', (c->>'type')::pg_catalog.regtype), ', ') INTO v_ddl
    FROM jsonb_array_elements(p_hidden_columns) c;
  IF v_ddl IS NOT NULL THEN
    EXECUTE format('ALTER TABLE %s %s', pgtrickle._relname(v_relid), v_ddl);
    EXECUTE format('CREATE INDEX ON %s (%s)', pgtrickle._relname(v_relid),
                   (SELECT string_agg(format('%I', c), ', ') FROM unnest(p_index_columns) c));
  END IF;
  PERFORM pgtrickle._store_plan(p_id, p_strategy, p_hidden_columns, p_full_sql, p_delta_sql);
END
$fn$;

-- Records the plan and lets the owner read the change buffers the plan reads. The owner must be
-- able to read each captured source itself: a buffer holds every column of its table.
CREATE FUNCTION pgtrickle._store_plan(
  p_id bigint, p_strategy text, p_hidden_columns jsonb, p_full_sql text, p_delta_sql text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  st pgtrickle.pgt_stream_tables;
  v_owner name;
  src record;
BEGIN
  PERFORM pgtrickle._assert_owner(p_id);
  SELECT * INTO st FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = p_id FOR UPDATE;
  SELECT r.rolname INTO v_owner FROM pg_roles r WHERE r.oid = st.pgt_owner;
  EXECUTE format('GRANT USAGE ON SCHEMA pgtrickle_changes TO %I', v_owner);
  FOR src IN
    SELECT d.source_relid, ct.buffer_name
      FROM pgtrickle.pgt_dependencies d
      JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = d.source_relid
     WHERE d.pgt_id = p_id AND d.cdc_mode = 'TRIGGER'
  LOOP
    IF NOT has_table_privilege(st.pgt_owner, src.source_relid, 'SELECT') THEN
      RAISE EXCEPTION 'stream table "%" cannot be DIFFERENTIAL: its owner cannot read %', st.pgt_name,
        pgtrickle._relname(src.source_relid)
        USING ERRCODE = 'insufficient_privilege', HINT = 'Grant SELECT on the table to the owner, or use FULL.';
    END IF;
    EXECUTE format('GRANT SELECT ON pgtrickle_changes.%I TO %I', src.buffer_name, v_owner);
  END LOOP;
  INSERT INTO pgtrickle.pgt_plans AS p (pgt_id, strategy, hidden_columns, full_sql, delta_sql)
  VALUES (p_id, p_strategy, p_hidden_columns, p_full_sql, p_delta_sql)
  ON CONFLICT (pgt_id) DO UPDATE
    SET strategy = excluded.strategy, hidden_columns = excluded.hidden_columns, full_sql = excluded.full_sql,
        delta_sql = excluded.delta_sql, compiled_at = now();
  UPDATE pgtrickle.pgt_stream_tables s
     SET effective_mode = 'DIFFERENTIAL', fallback_reason = NULL, needs_reinit = true, updated_at = now()
   WHERE s.pgt_id = p_id;
END
$fn$;

-- A query the compiler cannot maintain differentially is refreshed in full; the reason is kept
-- in the catalog and reported where psql users look.
CREATE FUNCTION pgtrickle._record_fallback(p_id bigint, p_reason text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  st pgtrickle.pgt_stream_tables;
BEGIN
  PERFORM pgtrickle._assert_owner(p_id);
  DELETE FROM pgtrickle.pgt_plans p WHERE p.pgt_id = p_id;
  UPDATE pgtrickle.pgt_stream_tables s
     SET effective_mode = 'FULL', fallback_reason = p_reason, updated_at = now()
   WHERE s.pgt_id = p_id
  RETURNING * INTO st;
  IF st.refresh_mode = 'DIFFERENTIAL' THEN
    RAISE WARNING 'stream table "%" is refreshed in FULL mode: %', st.pgt_name, p_reason;
  ELSIF st.refresh_mode = 'AUTO' THEN
    RAISE NOTICE 'stream table "%" is refreshed in FULL mode: %', st.pgt_name, p_reason;
  END IF;
END
$fn$;

CREATE FUNCTION pgtrickle.explain_st(name text, with_analyze boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql
AS $fn$
DECLARE
  v_id bigint := pgtrickle._resolve(name);
  st pgtrickle.pgt_stream_tables;
  v_sql text;
  v_plan text;
BEGIN
  PERFORM pgtrickle._assert_owner(v_id);
  SELECT * INTO st FROM pgtrickle.pgt_stream_tables s WHERE s.pgt_id = v_id;
  SELECT p.delta_sql INTO v_sql FROM pgtrickle.pgt_plans p WHERE p.pgt_id = v_id;
  IF v_sql IS NULL THEN
    RAISE NOTICE 'stream table "%" has no differential plan%', st.pgt_name,
      coalesce(': ' || st.fallback_reason, '; the defining query is recomputed in full');
    v_sql := st.defining_query;
    IF NOT with_analyze THEN
      RETURN v_sql;
    END IF;
  ELSIF NOT with_analyze THEN
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
  'The SQL of a stream table''s differential refresh, or with with_analyze its EXPLAIN ANALYZE in JSON.';

CREATE FUNCTION pgtrickle.pgt_status()
RETURNS TABLE (
  name text, status text, refresh_mode text, is_populated boolean, consecutive_errors integer,
  schedule text, data_timestamp timestamptz, staleness interval)
LANGUAGE sql STABLE
AS $$
  SELECT format('%I.%I', st.pgt_schema, st.pgt_name), st.status, st.refresh_mode, st.is_populated,
         st.consecutive_errors, st.schedule, st.data_timestamp, now() - st.data_timestamp
    FROM pgtrickle.pgt_stream_tables st
   ORDER BY st.pgt_schema, st.pgt_name
$$;

COMMENT ON FUNCTION pgtrickle.pgt_status() IS 'One row per stream table with its status and staleness.';

REVOKE ALL ON FUNCTION pgtrickle._record_dependencies(bigint, oid), pgtrickle._unregister(bigint),
  pgtrickle._gc_cdc(oid[]) FROM PUBLIC;
