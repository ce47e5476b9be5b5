-- 0013: a source's primary key in its DDL fingerprint.
--
-- The compiler relies on a source's primary key: a join of tables that all have one is stored
-- by their keys and an UPDATE becomes an UPDATE in place (strategy keyed), and a key column is
-- known never to be NULL. The fingerprint (0005) covered names, columns, types, row security
-- and view definitions, but not keys, so ALTER TABLE … DROP CONSTRAINT <pkey> went unnoticed:
-- the stream table kept its keyed plan, and a second row with the same key then overwrote the
-- first one's row in the stream table. The fingerprint gets a sixth part, the primary key's
-- columns, and a change of it reinitializes the stream tables that read the source and
-- re-generates the source's change capture, like a change of its columns does: capture pairs
-- the old and new rows of an UPDATE by the primary key, and paired rows of different source
-- rows once the key no longer told them apart.

-- The fingerprint of 0005, unchanged, under another name; _source_fingerprint adds the key.
ALTER FUNCTION pgtrickle._source_fingerprint(oid) RENAME TO _source_fingerprint_core;

-- The primary key's columns by attnum, in key order; empty without one.
CREATE FUNCTION pgtrickle._key_fingerprint(p_relid oid)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT md5(coalesce((SELECT string_agg(k.attnum::text, ',' ORDER BY k.ord)
                         FROM pg_index i
                        CROSS JOIN LATERAL unnest(i.indkey::smallint[]) WITH ORDINALITY AS k(attnum, ord)
                        WHERE i.indrelid = p_relid AND i.indisprimary), ''))
$$;

-- Six parts, each an md5: name:columns:types:security:definition:key. NULL when the relation
-- no longer exists.
CREATE FUNCTION pgtrickle._source_fingerprint(p_relid oid)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT f || ':' || pgtrickle._key_fingerprint(p_relid)
    FROM (SELECT pgtrickle._source_fingerprint_core(p_relid) AS f) s
   WHERE f IS NOT NULL
$$;

-- What a difference in each part of the fingerprint means, in part order, for the reason
-- recorded with a reinitialization.
CREATE FUNCTION pgtrickle._fingerprint_parts()
RETURNS text[]
LANGUAGE sql IMMUTABLE
AS $$
  SELECT ARRAY['renamed', 'columns changed', 'types changed', 'row-level security changed',
               'definition changed', 'primary key changed']
$$;

COMMENT ON COLUMN pgtrickle.pgt_dependencies.ddl_fingerprint IS
  'pgtrickle._source_fingerprint(source_relid) when last checked: name:columns:types:security:definition:key, each an md5.';

-- Recorded fingerprints get the key as it is now: the first check after this migration compares
-- like with like, and reinitializes nothing that did not change since the last check.
UPDATE pgtrickle.pgt_dependencies d
   SET ddl_fingerprint = d.ddl_fingerprint || ':' || pgtrickle._key_fingerprint(d.source_relid)
 WHERE d.ddl_fingerprint IS NOT NULL AND d.ddl_fingerprint <> 'dropped';

-- As in 0005, with the reasons read from _fingerprint_parts(), and change capture re-generated
-- when the primary key changed as when the columns did.
CREATE OR REPLACE FUNCTION pgtrickle._ddl_check(p_origin text)
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
        FROM (SELECT u.what, u.i::int AS i FROM unnest(pgtrickle._fingerprint_parts()) WITH ORDINALITY AS u(what, i)) p
       WHERE c.old IS NULL OR split_part(c.old, ':', p.i) <> split_part(c.new, ':', p.i);
      IF c.old IS NOT NULL AND split_part(c.old, ':', 1) <> split_part(c.new, ':', 1) THEN
        v_parts := replace(v_parts, 'renamed', format('renamed from %s', c.name));
      END IF;
      v_reason := format('upstream %s altered: %s (%s)', v_kind, v_name, coalesce(v_parts, 'changed'));
    END IF;

    -- Capture names the columns, and pairs the old and new rows of an UPDATE by the primary key.
    IF EXISTS (SELECT 1 FROM pgtrickle.pgt_change_tracking ct WHERE ct.source_relid = c.relid)
       AND (v_dropped OR c.old IS NULL OR split_part(c.old, ':', 2) <> split_part(c.new, ':', 2)
            OR split_part(c.old, ':', 6) <> split_part(c.new, ':', 6)) THEN
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

