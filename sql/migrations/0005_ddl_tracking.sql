-- 0005: DDL tracking (a catalog fingerprint per source, checked by event triggers where the
-- installing role may create them and by the refresh nodes everywhere), refreshes under
-- row-level security, pgtrickle.version() as (extension, library, PostgreSQL) and
-- pgtrickle.migrate(), which re-generates the dynamic objects the catalog can rebuild.

-- What each stream table last saw of each source: the source's name (to report it once it is
-- gone) and a fingerprint of everything the stream table and the source's change capture rely on.
ALTER TABLE pgtrickle.pgt_dependencies
  ADD COLUMN source_name text,
  ADD COLUMN ddl_fingerprint text;

COMMENT ON COLUMN pgtrickle.pgt_dependencies.ddl_fingerprint IS
  'pgtrickle._source_fingerprint(source_relid) when last checked: name:columns:types:security:definition, each an md5.';

-- Every reinit that DDL caused, with its reason; removed with the stream table.
CREATE TABLE pgtrickle.pgt_ddl_events (
  event_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  pgt_id       bigint NOT NULL REFERENCES pgtrickle.pgt_stream_tables (pgt_id) ON DELETE CASCADE,
  detected_at  timestamptz NOT NULL DEFAULT now(),
  detected_by  text NOT NULL CHECK (detected_by IN ('EVENT_TRIGGER', 'FINGERPRINT', 'MIGRATE')),
  source_relid oid NOT NULL,
  source_name  text NOT NULL,
  reason       text NOT NULL
);
CREATE INDEX pgt_ddl_events_pgt_idx ON pgtrickle.pgt_ddl_events (pgt_id, detected_at DESC);

COMMENT ON TABLE pgtrickle.pgt_ddl_events IS 'One row per stream table marked for reinitialization by DDL on a source, with the reason.';

-- Refresh nodes register here (pgtrickle._register_node) so that version() can name the code
-- that maintains the catalog.
CREATE TABLE pgtrickle.pgt_nodes (
  node_id         text PRIMARY KEY,
  library_version text NOT NULL,
  started_at      timestamptz,
  last_seen       timestamptz
);

COMMENT ON TABLE pgtrickle.pgt_nodes IS 'Refresh nodes that registered, with the version of their code and when they were last seen.';

GRANT SELECT ON pgtrickle.pgt_ddl_events, pgtrickle.pgt_nodes TO PUBLIC;

-- The fingerprint of one source, NULL when the relation no longer exists. Five parts, each an
-- md5, so a change can be named: the qualified name; the columns (attnum, name, type, typmod,
-- collation; dropped ones are absent, pgtrickle's hidden __pgt_ columns are left out because
-- installing a plan re-creates them); the user-defined types those columns use, followed through
-- arrays, domains, ranges and composites (enum labels in order, domain NOT NULL and constraints;
-- built-in types cannot change); row security (the RLS flags and every policy with its
-- expressions); a view's definition. PL/pgSQL so that its plans are kept for the session: the
-- nodes call it for every source every few seconds. Every lookup is by an indexed oid.
CREATE FUNCTION pgtrickle._source_fingerprint(p_relid oid)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  r record;
  v_cols text;
  v_user_types oid[];
  v_types text;
  v_rls text;
BEGIN
  SELECT c.relkind, c.relrowsecurity, c.relforcerowsecurity, format('%I.%I', n.nspname, c.relname) AS name
    INTO r
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.oid = p_relid;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;

  -- 16384 is FirstNormalObjectId: types below it are built in.
  SELECT string_agg(format('%s %I %s %s %s', a.attnum, a.attname, a.atttypid, a.atttypmod, a.attcollation),
                    ',' ORDER BY a.attnum),
         array_agg(DISTINCT a.atttypid) FILTER (WHERE a.atttypid >= 16384)
    INTO v_cols, v_user_types
    FROM pg_attribute a
   WHERE a.attrelid = p_relid AND a.attnum > 0 AND NOT a.attisdropped AND a.attname NOT LIKE '\_\_pgt\_%';

  IF v_user_types IS NOT NULL THEN
    WITH RECURSIVE types(oid) AS (
      SELECT u.oid FROM unnest(v_user_types) u(oid)
      UNION
      SELECT v.x
        FROM types
       CROSS JOIN LATERAL (SELECT t.typelem, t.typbasetype, t.typtype, t.typrelid FROM pg_type t WHERE t.oid = types.oid) t
       CROSS JOIN LATERAL (
         SELECT t.typelem
         UNION ALL SELECT t.typbasetype
         UNION ALL SELECT g.rngsubtype FROM pg_range g WHERE g.rngtypid = types.oid
         UNION ALL SELECT a.atttypid FROM pg_attribute a
                    WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) v(x)
       WHERE v.x >= 16384)
    SELECT string_agg(d.line, ';' ORDER BY types.oid)
      INTO v_types
      FROM types
     CROSS JOIN LATERAL (
       SELECT format('%s %s %s %s %s %s [%s] [%s]', t.oid, t.oid::regtype, t.typtype, t.typbasetype, t.typtypmod,
                     t.typnotnull,
                     (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid),
                     (SELECT string_agg(format('%I %s', k.conname, pg_get_constraintdef(k.oid)), ',' ORDER BY k.conname)
                        FROM pg_constraint k WHERE k.contypid = t.oid)) AS line
         FROM pg_type t WHERE t.oid = types.oid) d;
  END IF;

  SELECT string_agg(format('%I %s %s %s %s %s', p.polname, p.polcmd, p.polpermissive, p.polroles,
                           pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)),
                    ';' ORDER BY p.polname)
    INTO v_rls
    FROM pg_policy p WHERE p.polrelid = p_relid;

  RETURN concat_ws(':',
    md5(r.name),
    md5(coalesce(v_cols, '')),
    md5(coalesce(v_types, '')),
    md5(format('%s %s [%s]', r.relrowsecurity, r.relforcerowsecurity, v_rls)),
    md5(coalesce(CASE WHEN r.relkind IN ('v', 'm') THEN pg_get_viewdef(p_relid) END, '')));
END
$fn$;

-- Dependencies are fingerprinted as they are recorded (create, alter), so DDL that follows is
-- seen even before any node has compiled the stream table.
CREATE FUNCTION pgtrickle._fingerprint_dependency()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  NEW.source_name := coalesce(NEW.source_name, pgtrickle._relname(NEW.source_relid));
  NEW.ddl_fingerprint := coalesce(NEW.ddl_fingerprint, pgtrickle._source_fingerprint(NEW.source_relid));
  RETURN NEW;
END
$fn$;

CREATE TRIGGER pgt_dependencies_fingerprint BEFORE INSERT ON pgtrickle.pgt_dependencies
  FOR EACH ROW EXECUTE FUNCTION pgtrickle._fingerprint_dependency();

UPDATE pgtrickle.pgt_dependencies d
   SET source_name = pgtrickle._relname(d.source_relid),
       ddl_fingerprint = pgtrickle._source_fingerprint(d.source_relid)
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = d.source_relid);

-- Whether the change capture of a source still works and covers exactly its columns: its four
-- triggers present and enabled (ALTER TABLE … DISABLE TRIGGER would lose changes silently), and
-- the captured columns those of the table. Missing capture or a dropped table count as current:
-- there is nothing to rebuild.
CREATE FUNCTION pgtrickle._capture_current(p_relid oid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((
    SELECT ct.captured_attnums = (SELECT array_agg(a.attnum ORDER BY a.attnum) FROM pg_attribute a
                                   WHERE a.attrelid = p_relid AND a.attnum > 0 AND NOT a.attisdropped)
       AND (SELECT count(*) FROM pg_trigger t
             WHERE t.tgrelid = p_relid AND t.tgenabled <> 'D'
               AND t.tgname IN ('pgtrickle_cdc_ins', 'pgtrickle_cdc_upd', 'pgtrickle_cdc_del', 'pgtrickle_cdc_trunc')) = 4
      FROM pgtrickle.pgt_change_tracking ct
     WHERE ct.source_relid = p_relid AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = p_relid)), true)
$$;

-- Marks the stream tables that read p_relid for reinitialization: the plan goes (only a node
-- can compile a new one; until then refreshes are FULL), needs_reinit makes the next refresh a
-- REINITIALIZE, and a dropped source puts them in ERROR (unless SUSPENDED) with the reason as
-- last_error, so no scheduler retries a query that cannot run. Stream tables downstream of them are not marked:
-- a reinit rewrites the rows through the stream table's own change capture, so they receive it
-- as ordinary changes.
CREATE FUNCTION pgtrickle._mark_reinit(p_relid oid, p_source text, p_reason text, p_dropped boolean, p_origin text)
RETURNS TABLE (pgt_id bigint, stream_table text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
  st record;
BEGIN
  FOR st IN
    UPDATE pgtrickle.pgt_stream_tables s
       SET needs_reinit = true, effective_mode = NULL, fallback_reason = NULL, updated_at = now(),
           status = CASE WHEN p_dropped AND s.status <> 'SUSPENDED' THEN 'ERROR' ELSE s.status END,
           last_error = CASE WHEN p_dropped THEN p_reason ELSE s.last_error END,
           last_error_at = CASE WHEN p_dropped THEN now() ELSE s.last_error_at END
     WHERE s.pgt_id IN (SELECT d.pgt_id FROM pgtrickle.pgt_dependencies d WHERE d.source_relid = p_relid)
    RETURNING s.pgt_id, s.pgt_schema, s.pgt_name
  LOOP
    DELETE FROM pgtrickle.pgt_plans p WHERE p.pgt_id = st.pgt_id;
    INSERT INTO pgtrickle.pgt_ddl_events (pgt_id, detected_by, source_relid, source_name, reason)
    VALUES (st.pgt_id, p_origin, p_relid, p_source, p_reason);
    PERFORM pgtrickle._notify_catalog('reinit', st.pgt_id, st.pgt_schema, st.pgt_name);
    IF p_dropped THEN
      RAISE NOTICE 'stream table %.% cannot be refreshed any more: %', quote_ident(st.pgt_schema), quote_ident(st.pgt_name), p_reason
        USING HINT = 'Give it a new query with pgtrickle.alter_stream_table(name, query => ...), or drop it.';
    ELSE
      RAISE NOTICE 'stream table %.% will be reinitialized: %', quote_ident(st.pgt_schema), quote_ident(st.pgt_name), p_reason;
    END IF;
    pgt_id := st.pgt_id;
    stream_table := format('%I.%I', st.pgt_schema, st.pgt_name);
    RETURN NEXT;
  END LOOP;
END
$fn$;

-- The check itself; p_origin says who asked ('EVENT_TRIGGER' or 'FINGERPRINT'). Nothing
-- changed costs one statement. A source whose columns changed or that was dropped gets its
-- change capture re-generated (or removed): capture functions name its columns, so a dropped
-- or retyped column would otherwise make writes to it fail. Stream tables whose own storage
-- table was dropped with DROP TABLE are removed from the catalog like drop_stream_table does,
-- but only outside event triggers: alter_stream_table drops and re-creates the storage within
-- one transaction, and an event trigger would see it half done.
CREATE FUNCTION pgtrickle._ddl_check(p_origin text)
RETURNS TABLE (pgt_id bigint, stream_table text, source text, reason text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
  v_changes jsonb;
  v_orphans jsonb;
  v_stale oid[];
  v_round int;
  v_running text := current_setting('pgtrickle.ddl_check_running', true);
  o record;
  c record;
  v_dropped boolean;
  v_name text;
  v_kind text;
  v_parts text;
  v_reason text;
BEGIN
  -- Several nodes and event triggers may find the same change: one handles it at a time, and
  -- looks again once it holds the lock. A node does not wait for a lock held by a user's DDL
  -- transaction; its next round finds what is left.
  FOR v_round IN 1 .. 2 LOOP
    -- Materialized: each source's fingerprint is computed once, whatever join the planner picks.
    WITH cur AS MATERIALIZED (
      SELECT s.source_relid, coalesce(pgtrickle._source_fingerprint(s.source_relid), 'dropped') AS fp
        FROM (SELECT DISTINCT x.source_relid FROM pgtrickle.pgt_dependencies x) s)
    SELECT
      (SELECT jsonb_agg(jsonb_build_object('pgt_id', d.pgt_id, 'relid', d.source_relid, 'type', d.source_type,
                                           'name', d.source_name, 'old', d.ddl_fingerprint, 'new', cur.fp))
         FROM pgtrickle.pgt_dependencies d
         JOIN cur ON cur.source_relid = d.source_relid
        WHERE d.ddl_fingerprint IS DISTINCT FROM cur.fp),
      (SELECT jsonb_agg(jsonb_build_object('pgt_id', st.pgt_id, 'schema', st.pgt_schema, 'name', st.pgt_name))
         FROM pgtrickle.pgt_stream_tables st
        WHERE p_origin <> 'EVENT_TRIGGER' AND NOT EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = st.pgt_relid)),
      (SELECT array_agg(ct.source_relid) FROM pgtrickle.pgt_change_tracking ct
        WHERE NOT pgtrickle._capture_current(ct.source_relid))
      INTO v_changes, v_orphans, v_stale;
    IF v_changes IS NULL AND v_orphans IS NULL AND v_stale IS NULL THEN
      RETURN;
    END IF;
    EXIT WHEN v_round = 2;
    IF p_origin = 'EVENT_TRIGGER' THEN
      PERFORM pg_advisory_xact_lock(hashtext('pgtrickle.check_ddl'));
    ELSIF NOT pg_try_advisory_xact_lock(hashtext('pgtrickle.check_ddl')) THEN
      RETURN;
    END IF;
  END LOOP;

  -- The DDL this check runs (re-generating capture) fires the event triggers again.
  PERFORM set_config('pgtrickle.ddl_check_running', 'on', true);

  FOR o IN SELECT * FROM jsonb_to_recordset(v_orphans) AS x(pgt_id bigint, schema name, name name) LOOP
    v_name := format('%I.%I', o.schema, o.name);
    v_reason := format('storage table dropped: %s; the stream table was removed from the catalog', v_name);
    PERFORM pgtrickle._unregister(o.pgt_id);
    RAISE NOTICE 'stream table % was removed: its storage table was dropped', v_name;
    pgt_id := o.pgt_id;
    stream_table := v_name;
    source := v_name;
    reason := v_reason;
    RETURN NEXT;
  END LOOP;

  FOR c IN
    SELECT x.relid, max(x.type) AS type, max(x.name) AS name, max(x.new) AS new,
           max(x.old) FILTER (WHERE x.old IS NOT NULL AND x.old <> 'dropped') AS old,
           bool_or(x.old IS NOT NULL) AS changed
      FROM jsonb_to_recordset(v_changes) AS x(pgt_id bigint, relid oid, type text, name text, old text, new text)
     WHERE EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies d WHERE d.pgt_id = x.pgt_id AND d.source_relid = x.relid)
     GROUP BY x.relid
     ORDER BY x.relid
  LOOP
    v_dropped := c.new = 'dropped';
    IF NOT c.changed THEN
      -- Recorded before fingerprints existed: this is the first look, there is nothing to compare.
      UPDATE pgtrickle.pgt_dependencies d
         SET ddl_fingerprint = c.new,
             source_name = CASE WHEN v_dropped THEN d.source_name ELSE pgtrickle._relname(c.relid) END
       WHERE d.source_relid = c.relid AND d.ddl_fingerprint IS NULL;
      CONTINUE;
    END IF;

    v_kind := CASE c.type WHEN 'VIEW' THEN 'view' WHEN 'MATVIEW' THEN 'materialized view'
                          WHEN 'FOREIGN_TABLE' THEN 'foreign table' ELSE 'table' END;
    IF v_dropped THEN
      v_name := coalesce(c.name, format('OID %s (table no longer exists)', c.relid));
      v_reason := format('upstream %s dropped: %s', v_kind, v_name);
    ELSE
      v_name := pgtrickle._relname(c.relid);
      SELECT string_agg(p.what, ', ' ORDER BY p.i) INTO v_parts
        FROM (VALUES (1, 'renamed'), (2, 'columns changed'), (3, 'types changed'),
                     (4, 'row-level security changed'), (5, 'definition changed')) p(i, what)
       WHERE c.old IS NULL OR split_part(c.old, ':', p.i) <> split_part(c.new, ':', p.i);
      IF c.old IS NOT NULL AND split_part(c.old, ':', 1) <> split_part(c.new, ':', 1) THEN
        v_parts := replace(v_parts, 'renamed', format('renamed from %s', c.name));
      END IF;
      v_reason := format('upstream %s altered: %s (%s)', v_kind, v_name, coalesce(v_parts, 'changed'));
    END IF;

    IF EXISTS (SELECT 1 FROM pgtrickle.pgt_change_tracking ct WHERE ct.source_relid = c.relid)
       AND (v_dropped OR c.old IS NULL OR split_part(c.old, ':', 2) <> split_part(c.new, ':', 2)) THEN
      PERFORM pgtrickle._drop_cdc(c.relid);
      IF NOT v_dropped THEN
        PERFORM pgtrickle._ensure_cdc(c.relid);
      END IF;
    END IF;

    FOR o IN SELECT * FROM pgtrickle._mark_reinit(c.relid, v_name, v_reason, v_dropped, p_origin) LOOP
      pgt_id := o.pgt_id;
      stream_table := o.stream_table;
      source := v_name;
      reason := v_reason;
      RETURN NEXT;
    END LOOP;

    UPDATE pgtrickle.pgt_dependencies d
       SET ddl_fingerprint = c.new, source_name = CASE WHEN v_dropped THEN d.source_name ELSE v_name END
     WHERE d.source_relid = c.relid;
  END LOOP;

  -- Capture that no longer works or covers every column, where the fingerprint saw nothing: a
  -- capture trigger disabled or dropped, or a stream table's storage whose hidden __pgt_ columns
  -- a new plan re-created (the compiler plans the stream tables reading it differentially only
  -- over complete capture). Changes may have been missed, so the readers are reinitialized.
  FOR c IN SELECT r.relid,
                  ct.captured_attnums = (SELECT array_agg(a.attnum ORDER BY a.attnum) FROM pg_attribute a
                                          WHERE a.attrelid = r.relid AND a.attnum > 0 AND NOT a.attisdropped)
                    AS same_columns
             FROM unnest(v_stale) r(relid)
             JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = r.relid
            WHERE EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = r.relid)
              AND NOT pgtrickle._capture_current(r.relid)
            ORDER BY r.relid LOOP
    v_name := pgtrickle._relname(c.relid);
    v_reason := format('change capture of %s rebuilt: %s', v_name,
                       CASE WHEN c.same_columns THEN 'a capture trigger was disabled or dropped'
                            ELSE 'its columns changed' END);
    PERFORM pgtrickle._drop_cdc(c.relid);
    PERFORM pgtrickle._ensure_cdc(c.relid);
    FOR o IN SELECT * FROM pgtrickle._mark_reinit(c.relid, v_name, v_reason, false, p_origin) LOOP
      pgt_id := o.pgt_id;
      stream_table := o.stream_table;
      source := v_name;
      reason := v_reason;
      RETURN NEXT;
    END LOOP;
  END LOOP;

  PERFORM set_config('pgtrickle.ddl_check_running', coalesce(v_running, ''), true);
END
$fn$;

-- Contract for refresh nodes (and operators without event triggers):
--   SELECT * FROM pgtrickle._check_ddl();
-- compares every source's fingerprint with the one stored in pgt_dependencies, in one statement
-- when nothing changed. For each source that changed since, it marks the stream tables reading
-- it for reinitialization (needs_reinit, plan removed so a node re-plans, ERROR when the source
-- was dropped), records the reason in pgt_ddl_events, notifies pg_trickle_catalog with op
-- 'reinit', raises a NOTICE, and returns one row per stream table marked:
--   pgt_id bigint, stream_table text (quoted schema.name), source text (quoted schema.name, or
--   'OID n (table no longer exists)'), reason text ('upstream table dropped: public.orders',
--   'upstream table altered: public.orders (columns changed)', …).
-- Stream tables whose storage table was dropped with DROP TABLE are unregistered and returned
-- with reason 'storage table dropped: …'. Safe to call at any time and from several nodes: it
-- runs in the caller's transaction; a second call finds nothing. Executable by everyone, so a
-- table owner can call it right after (or in the same transaction as) DDL on a source.
CREATE FUNCTION pgtrickle._check_ddl()
RETURNS TABLE (pgt_id bigint, stream_table text, source text, reason text)
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM pgtrickle._ddl_check('FINGERPRINT') $$;

COMMENT ON FUNCTION pgtrickle._check_ddl() IS
  'Marks stream tables whose sources changed (DDL) for reinitialization; returns pgt_id, stream_table, source, reason per table marked.';

-- Event triggers call the same check at once, in the DDL's own transaction. A failure must not
-- block the user's DDL: it becomes a WARNING and the nodes' periodic check catches up.
CREATE FUNCTION pgtrickle._on_ddl_command_end()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  -- Temporary objects (create_stream_table's probe view) are nobody's source.
  IF current_setting('pgtrickle.ddl_check_running', true) = 'on'
     OR NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies)
     OR NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
                     WHERE c.schema_name IS NULL OR c.schema_name NOT LIKE 'pg\_temp%') THEN
    RETURN;
  END IF;
  BEGIN
    PERFORM FROM pgtrickle._ddl_check('EVENT_TRIGGER');
  EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'pgtrickle could not check % against its stream tables: %', tg_tag, SQLERRM
      USING HINT = 'The refresh nodes'' periodic check (pgtrickle._check_ddl()) will mark the affected stream tables.';
  END;
END
$fn$;

CREATE FUNCTION pgtrickle._on_sql_drop()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF current_setting('pgtrickle.ddl_check_running', true) = 'on'
     OR NOT EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies)
     OR NOT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() o
                     WHERE NOT o.is_temporary AND o.schema_name IS DISTINCT FROM 'pgtrickle_changes') THEN
    RETURN;
  END IF;
  BEGIN
    PERFORM FROM pgtrickle._ddl_check('EVENT_TRIGGER');
  EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'pgtrickle could not check % against its stream tables: %', tg_tag, SQLERRM
      USING HINT = 'The refresh nodes'' periodic check (pgtrickle._check_ddl()) will mark the affected stream tables.';
  END;
END
$fn$;

-- Installs the event triggers when the current role may (superusers only); reports what it did.
-- Runs as the caller, so a superuser can add them later with pgtrickle.migrate().
CREATE FUNCTION pgtrickle._install_event_triggers()
RETURNS TABLE (object text, action text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
  v_super boolean := (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user);
BEGIN
  object := 'event trigger pgtrickle_ddl_end';
  IF EXISTS (SELECT 1 FROM pg_event_trigger e WHERE e.evtname = 'pgtrickle_ddl_end') THEN
    action := 'unchanged';
  ELSIF v_super THEN
    CREATE EVENT TRIGGER pgtrickle_ddl_end ON ddl_command_end
      WHEN TAG IN ('ALTER TABLE', 'ALTER TYPE', 'ALTER DOMAIN', 'CREATE POLICY', 'ALTER POLICY',
                   'CREATE VIEW', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW', 'ALTER FOREIGN TABLE', 'ALTER SCHEMA')
      EXECUTE FUNCTION pgtrickle._on_ddl_command_end();
    action := 'created';
  ELSE
    action := 'skipped';
  END IF;
  RETURN NEXT;

  object := 'event trigger pgtrickle_sql_drop';
  IF EXISTS (SELECT 1 FROM pg_event_trigger e WHERE e.evtname = 'pgtrickle_sql_drop') THEN
    action := 'unchanged';
  ELSIF v_super THEN
    CREATE EVENT TRIGGER pgtrickle_sql_drop ON sql_drop EXECUTE FUNCTION pgtrickle._on_sql_drop();
    action := 'created';
  ELSE
    action := 'skipped';
  END IF;
  RETURN NEXT;
END
$fn$;

-- Whether row-level security filters what the stream table's owner reads from a captured
-- source. Change buffers hold every row of their table and no policy applies to them, so such
-- a stream table is refreshed in full, where the sources are read as the owner and the policies
-- apply (superusers, BYPASSRLS roles and the table's owner without FORCE are exempt, as in
-- PostgreSQL).
CREATE FUNCTION pgtrickle._rls_applies(p_id bigint)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (
    SELECT 1
      FROM pgtrickle.pgt_stream_tables st
      JOIN pg_roles o ON o.oid = st.pgt_owner
      JOIN pgtrickle.pgt_dependencies d ON d.pgt_id = st.pgt_id
      JOIN pg_class c ON c.oid = d.source_relid
     WHERE st.pgt_id = p_id AND c.relrowsecurity AND NOT o.rolsuper AND NOT o.rolbypassrls
       AND (c.relforcerowsecurity OR c.relowner <> st.pgt_owner))
$$;

-- _refresh_begin of 0003, plus: a refresh whose source was dropped, or whose query reads a
-- column that is gone, fails with the table's name (never an OID) instead of PostgreSQL's
-- error about the defining query; and under row-level security the delta is not used.
CREATE OR REPLACE FUNCTION pgtrickle._refresh_begin(p_id bigint, p_epoch bigint)
RETURNS TABLE (
  schema_name name, rel_name name, owner_name name, refresh_mode text, needs_reinit boolean,
  frontier pg_snapshot, frontier_xid xid8, defining_query text, column_list text,
  full_sql text, delta_sql text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  st pgtrickle.pgt_stream_tables;
  gone record;
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

  SELECT d.source_relid, d.source_name, d.source_type, col.name AS column_name,
         NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = d.source_relid) AS dropped
    INTO gone
    FROM pgtrickle.pgt_dependencies d
    LEFT JOIN LATERAL (
      SELECT u.name FROM unnest(d.columns_used) u(name)
       WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                          WHERE a.attrelid = d.source_relid AND a.attname = u.name AND NOT a.attisdropped)
       ORDER BY u.name LIMIT 1) col ON true
   WHERE d.pgt_id = p_id
     AND (col.name IS NOT NULL OR NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = d.source_relid))
   ORDER BY d.source_relid
   LIMIT 1;
  IF FOUND AND gone.dropped THEN
    RAISE EXCEPTION 'stream table "%" cannot be refreshed: upstream % dropped: %', st.pgt_name,
      CASE gone.source_type WHEN 'VIEW' THEN 'view' WHEN 'MATVIEW' THEN 'materialized view'
                            WHEN 'FOREIGN_TABLE' THEN 'foreign table' ELSE 'table' END,
      coalesce(gone.source_name, format('OID %s (table no longer exists)', gone.source_relid))
      USING ERRCODE = 'undefined_table',
            HINT = 'Give it a query over existing tables with pgtrickle.alter_stream_table(name, query => ...), '
                   'or drop it with pgtrickle.drop_stream_table(name).';
  ELSIF FOUND THEN
    RAISE EXCEPTION 'stream table "%" cannot be refreshed: column "%" of upstream table % no longer exists',
      st.pgt_name, gone.column_name, pgtrickle._relname(gone.source_relid)
      USING ERRCODE = 'undefined_column',
            HINT = 'Give it a query over existing columns with pgtrickle.alter_stream_table(name, query => ...).';
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
  IF delta_sql IS NOT NULL AND pgtrickle._rls_applies(p_id) THEN
    delta_sql := NULL;
  END IF;
  RETURN NEXT;
END
$fn$;

-- version(): was text ('0.1.0'); nothing in the code base calls it.
DROP FUNCTION pgtrickle.version();

-- The newest library version among nodes seen in the last minute (nodes register at start and
-- on every heartbeat), compared as dotted numbers, so '0.10.0' is newer than '0.9.2'.
CREATE FUNCTION pgtrickle.version(OUT extension_version text, OUT library_version text, OUT pg_major int)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT (SELECT max(v.version)::text FROM pgtrickle.pgt_schema_version v),
         (SELECT n.library_version FROM pgtrickle.pgt_nodes n
           WHERE n.last_seen > now() - interval '1 minute'
           ORDER BY string_to_array(substring(n.library_version FROM '^[0-9]+(?:\.[0-9]+)*'), '.')::int[] DESC NULLS LAST,
                    n.last_seen DESC
           LIMIT 1),
         current_setting('server_version_num')::int / 10000
$$;

COMMENT ON FUNCTION pgtrickle.version() IS
  'One row: extension_version (newest applied catalog migration), library_version (newest version of a running node, NULL without one), pg_major.';

-- Contract for refresh nodes:
--   SELECT pgtrickle._register_node($1, $2)   -- node id, the node's code version, e.g. '0.1.0'
-- at start (with p_starting => true) and on every heartbeat. Upserts pgt_nodes, setting
-- last_seen (and started_at at start or when the version changed), forgets nodes not seen for a
-- day, and returns the catalog version (what version() reports as extension_version), so the
-- node can compare it with the migrations it ships in the same round trip.
CREATE FUNCTION pgtrickle._register_node(p_node_id text, p_version text, p_starting boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF p_node_id IS NULL OR btrim(p_node_id) = '' OR p_version IS NULL OR btrim(p_version) = '' THEN
    RAISE EXCEPTION 'a node registers with a node id and a version' USING ERRCODE = 'invalid_parameter_value',
      HINT = 'Call pgtrickle._register_node(node_id, version).';
  END IF;
  INSERT INTO pgtrickle.pgt_nodes AS n (node_id, library_version, started_at, last_seen)
  VALUES (p_node_id, p_version, now(), now())
  ON CONFLICT (node_id) DO UPDATE
    SET library_version = excluded.library_version, last_seen = excluded.last_seen,
        started_at = CASE WHEN p_starting OR n.library_version <> excluded.library_version
                          THEN excluded.started_at ELSE n.started_at END;
  DELETE FROM pgtrickle.pgt_nodes n WHERE n.last_seen < now() - interval '1 day';
  RETURN (SELECT max(v.version)::text FROM pgtrickle.pgt_schema_version v);
END
$fn$;

-- _drop_cdc of 0002, tolerant of parts already missing (a trigger dropped by hand, a buffer
-- gone), so that migrate() can rebuild damaged capture. Triggers still go first, by name, so
-- that psql users see no "drop cascades to trigger" notices.
CREATE OR REPLACE FUNCTION pgtrickle._drop_cdc(p_relid oid)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_buf name;
  v_kind text;
  v_table_exists boolean := EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = p_relid);
BEGIN
  DELETE FROM pgtrickle.pgt_change_tracking WHERE source_relid = p_relid RETURNING buffer_name INTO v_buf;
  IF v_buf IS NULL THEN
    RETURN;
  END IF;
  FOREACH v_kind IN ARRAY ARRAY['ins', 'upd', 'del', 'trunc'] LOOP
    IF v_table_exists AND EXISTS (SELECT 1 FROM pg_trigger t
                                   WHERE t.tgrelid = p_relid AND t.tgname = 'pgtrickle_cdc_' || v_kind) THEN
      EXECUTE format('DROP TRIGGER %I ON %s', 'pgtrickle_cdc_' || v_kind, pgtrickle._relname(p_relid));
    END IF;
    IF to_regprocedure(format('pgtrickle_changes.%I()', v_buf || '_' || v_kind)) IS NOT NULL THEN
      EXECUTE format('DROP FUNCTION pgtrickle_changes.%I()', v_buf || '_' || v_kind);
    END IF;
  END LOOP;
  IF to_regclass(format('pgtrickle_changes.%I', v_buf)) IS NOT NULL THEN
    EXECUTE format('DROP TABLE pgtrickle_changes.%I', v_buf);
  END IF;
END
$fn$;

-- Whether the change capture of a source is whole and matches the table's columns now: four
-- enabled triggers, their functions naming every column, and a buffer column of the right type
-- per captured column.
CREATE FUNCTION pgtrickle._capture_intact(p_relid oid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((
    SELECT ct.captured_attnums = (SELECT array_agg(a.attnum ORDER BY a.attnum) FROM pg_attribute a
                                   WHERE a.attrelid = p_relid AND a.attnum > 0 AND NOT a.attisdropped)
       AND (SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE t.tgrelid = p_relid AND t.tgenabled <> 'D' AND n.nspname = 'pgtrickle_changes'
               AND (t.tgname, p.proname) IN (('pgtrickle_cdc_ins', ct.buffer_name || '_ins'),
                                             ('pgtrickle_cdc_upd', ct.buffer_name || '_upd'),
                                             ('pgtrickle_cdc_del', ct.buffer_name || '_del'),
                                             ('pgtrickle_cdc_trunc', ct.buffer_name || '_trunc'))) = 4
       AND NOT EXISTS (
             SELECT 1 FROM pg_attribute a
              WHERE a.attrelid = p_relid AND a.attnum > 0 AND NOT a.attisdropped
                AND (NOT EXISTS (SELECT 1 FROM pg_attribute b
                                  WHERE b.attrelid = to_regclass(format('pgtrickle_changes.%I', ct.buffer_name))
                                    AND b.attname = 'new_' || a.attnum AND NOT b.attisdropped
                                    AND b.atttypid = a.atttypid AND b.atttypmod = a.atttypmod)
                     OR NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                     WHERE n.nspname = 'pgtrickle_changes' AND p.proname = ct.buffer_name || '_ins'
                                       AND strpos(p.prosrc, format('n.%I', a.attname)) > 0)))
      FROM pgtrickle.pgt_change_tracking ct WHERE ct.source_relid = p_relid), false)
$$;

-- The part of migrate() that writes the catalog and capture objects, for the stream tables the
-- caller owns (superusers: all).
CREATE FUNCTION pgtrickle._migrate_objects(p_replan boolean)
RETURNS TABLE (object text, action text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
  v_caller oid := pgtrickle._caller();
  v_super boolean := (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = pgtrickle._caller());
  src record;
  st record;
  buf record;
  v_st text;
BEGIN
  PERFORM set_config('pgtrickle.ddl_check_running', 'on', true);

  FOR src IN
    SELECT ct.source_relid, c.relowner, c.oid IS NOT NULL AS present
      FROM pgtrickle.pgt_change_tracking ct
      LEFT JOIN pg_class c ON c.oid = ct.source_relid
     WHERE v_super OR EXISTS (SELECT 1 FROM pgtrickle.pgt_dependencies d
                                JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id = d.pgt_id
                               WHERE d.source_relid = ct.source_relid AND pg_has_role(v_caller, s.pgt_owner, 'USAGE'))
     ORDER BY ct.source_relid
  LOOP
    object := 'change capture of ' || coalesce((SELECT min(d.source_name) FROM pgtrickle.pgt_dependencies d
                                                 WHERE d.source_relid = src.source_relid AND NOT src.present),
                                                pgtrickle._relname(src.source_relid));
    IF NOT src.present THEN
      PERFORM pgtrickle._drop_cdc(src.source_relid);
      action := 'removed';
    ELSIF pgtrickle._capture_intact(src.source_relid) THEN
      action := 'unchanged';
    ELSIF NOT (v_super OR pg_has_role(v_caller, src.relowner, 'USAGE')) THEN
      RAISE NOTICE '% is damaged but was left alone: only the owner of the table or a superuser may rebuild it', object;
      action := 'skipped';
    ELSE
      PERFORM pgtrickle._drop_cdc(src.source_relid);
      PERFORM pgtrickle._ensure_cdc(src.source_relid);
      PERFORM FROM pgtrickle._mark_reinit(src.source_relid, pgtrickle._relname(src.source_relid),
        format('change capture of %s was rebuilt by migrate()', pgtrickle._relname(src.source_relid)),
        false, 'MIGRATE');
      action := 'recreated';
    END IF;
    RETURN NEXT;
  END LOOP;

  FOR st IN
    SELECT s.pgt_id, s.pgt_owner, s.pgt_relid, s.pgt_schema, s.pgt_name, format('%I.%I', s.pgt_schema, s.pgt_name) AS name,
           r.rolname AS owner_name, p.hidden_columns, s.effective_mode
      FROM pgtrickle.pgt_stream_tables s
      JOIN pg_roles r ON r.oid = s.pgt_owner
      LEFT JOIN pgtrickle.pgt_plans p ON p.pgt_id = s.pgt_id
     WHERE v_super OR pg_has_role(v_caller, s.pgt_owner, 'USAGE')
     ORDER BY s.pgt_schema, s.pgt_name
  LOOP
    v_st := st.name;
    -- Fingerprints missing (stream tables older than this migration): the first look is stored.
    UPDATE pgtrickle.pgt_dependencies d
       SET ddl_fingerprint = pgtrickle._source_fingerprint(d.source_relid),
           source_name = coalesce(d.source_name, pgtrickle._relname(d.source_relid))
     WHERE d.pgt_id = st.pgt_id AND d.ddl_fingerprint IS NULL
       AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = d.source_relid);
    IF FOUND THEN
      object := 'ddl fingerprints of ' || v_st;
      action := 'stored';
      RETURN NEXT;
    END IF;

    object := 'plan of ' || v_st;
    IF st.hidden_columns IS NULL THEN
      -- No plan: refreshes are FULL, or a node has yet to compile one.
      IF NOT p_replan OR st.effective_mode IS NULL THEN
        CONTINUE;
      END IF;
      UPDATE pgtrickle.pgt_stream_tables s SET effective_mode = NULL, updated_at = now() WHERE s.pgt_id = st.pgt_id;
      PERFORM pgtrickle._notify_catalog('reinit', st.pgt_id, st.pgt_schema, st.pgt_name);
      action := 'replan_requested';
    ELSIF EXISTS (SELECT 1 FROM jsonb_array_elements(st.hidden_columns) h
                   WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                                      WHERE a.attrelid = st.pgt_relid AND a.attname = h->>'name' AND NOT a.attisdropped)) THEN
      -- A hidden column is missing: the delta statement cannot run; only a node can compile a new one.
      DELETE FROM pgtrickle.pgt_plans p WHERE p.pgt_id = st.pgt_id;
      UPDATE pgtrickle.pgt_stream_tables s SET effective_mode = NULL, needs_reinit = true, updated_at = now()
       WHERE s.pgt_id = st.pgt_id;
      PERFORM pgtrickle._notify_catalog('reinit', st.pgt_id, st.pgt_schema, st.pgt_name);
      action := 'replan_requested';
    ELSIF p_replan THEN
      UPDATE pgtrickle.pgt_stream_tables s SET effective_mode = NULL, updated_at = now() WHERE s.pgt_id = st.pgt_id;
      PERFORM pgtrickle._notify_catalog('reinit', st.pgt_id, st.pgt_schema, st.pgt_name);
      action := 'replan_requested';
    ELSE
      action := 'unchanged';
      -- The delta statement reads the change buffers as the owner (granted by _store_plan).
      IF NOT has_schema_privilege(st.pgt_owner, 'pgtrickle_changes', 'USAGE') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA pgtrickle_changes TO %I', st.owner_name);
        action := 'granted';
      END IF;
      FOR buf IN
        SELECT ct.buffer_name
          FROM pgtrickle.pgt_dependencies d
          JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = d.source_relid
         WHERE d.pgt_id = st.pgt_id AND d.cdc_mode = 'TRIGGER'
           AND to_regclass(format('pgtrickle_changes.%I', ct.buffer_name)) IS NOT NULL
           AND NOT has_table_privilege(st.pgt_owner, format('pgtrickle_changes.%I', ct.buffer_name), 'SELECT')
      LOOP
        EXECUTE format('GRANT SELECT ON pgtrickle_changes.%I TO %I', buf.buffer_name, st.owner_name);
        action := 'granted';
      END LOOP;
    END IF;
    RETURN NEXT;
  END LOOP;

  PERFORM set_config('pgtrickle.ddl_check_running', '', true);
END
$fn$;

-- Re-generates what the catalog can rebuild, for the stream tables the caller owns (superusers:
-- all): the DDL event triggers (superusers), change capture of every source (rebuilt when a
-- trigger, function or buffer column is missing or no longer matches the table), read access of
-- owners to the change buffers their plans read, DDL fingerprints; plans that cannot run any
-- more (or all, with replan => true) are handed back to the nodes to compile. Returns one row
-- per object looked at; running it again reports 'unchanged' everywhere.
CREATE FUNCTION pgtrickle.migrate(replan boolean DEFAULT false)
RETURNS TABLE (object text, action text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  RETURN QUERY SELECT * FROM pgtrickle._install_event_triggers();
  RETURN QUERY SELECT * FROM pgtrickle._migrate_objects(coalesce(replan, false));
END
$fn$;

COMMENT ON FUNCTION pgtrickle.migrate(boolean) IS
  'Re-generates event triggers, change capture and buffer grants of the caller''s stream tables; hands broken (or, with replan, all) plans back to the nodes. Returns (object, action).';

REVOKE ALL ON FUNCTION pgtrickle._ddl_check(text), pgtrickle._mark_reinit(oid, text, text, boolean, text),
  pgtrickle._register_node(text, text, boolean) FROM PUBLIC;
-- Anyone may bring the catalog in line with DDL that already happened (a table owner right after
-- an ALTER TABLE, without event triggers): it changes only what that DDL made stale.
GRANT EXECUTE ON FUNCTION pgtrickle._check_ddl() TO PUBLIC;

-- Last, so that the DDL of this migration does not fire them.
DO $do$
BEGIN
  IF EXISTS (SELECT 1 FROM pgtrickle._install_event_triggers() t WHERE t.action = 'skipped') THEN
    RAISE NOTICE 'pgtrickle: DDL event triggers not installed: role % is not a superuser', current_user
      USING HINT = 'DDL on sources is then found by the refresh nodes'' periodic pgtrickle._check_ddl(); '
                   'a superuser can add the triggers later with SELECT * FROM pgtrickle.migrate().';
  END IF;
END
$do$;
