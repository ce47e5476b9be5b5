-- 0011: probes of the change buffers that cost what is pending, not what was ever buffered.
--
-- A change buffer is a queue: rows are appended, and deleted once every dependent has consumed
-- them. Until VACUUM reaches it, the deleted rows stay in its heap and their entries in its xid
-- index. Two probes paid for that history on every refresh:
--   * _has_pending asked EXISTS (… WHERE xid >= frontier xmin …). PostgreSQL plans an EXISTS to
--     stop at the first match and, expecting a third of the rows to match, read the buffer from
--     its start: the pending rows are at its end, after every dead one (7.8 ms over 100,000
--     dead rows and none pending, measured; 0.07 ms through the index).
--   * The trim in _refresh_end deleted WHERE xid < horizon, which walks every index entry below
--     the horizon, those of rows deleted by earlier trims included (42 ms to delete nothing
--     over 210,000 such entries).
-- Now _has_pending reads the change marks (0006), one row per writing transaction, through their
-- key; and each buffer remembers below which xid it has been trimmed, so that a trim deletes
-- only the range since the last one. No transaction can add rows below a horizon (every xid a
-- running or later transaction holds is at or above each frontier's xmin), so that range holds
-- all that is left to delete.
--
-- And the small catalog checks every refresh makes are PL/pgSQL: PostgreSQL plans a SQL function
-- that it cannot inline (these set search_path) again on every call, PL/pgSQL once per
-- connection. Per call, measured over 2,000: _rls_applies 0.45 -> 0.03 ms, _caller 0.08 -> 0.02
-- (three calls per refresh), _has_pending 0.20 -> 0.03.

ALTER TABLE pgtrickle.pgt_change_tracking ADD COLUMN trimmed_below xid8;

COMMENT ON COLUMN pgtrickle.pgt_change_tracking.trimmed_below IS
  'Every change below this transaction id has been deleted from the buffer (NULL: not trimmed yet).';

-- Whether a stream table has changes its frontier has not seen: a transaction that changed one
-- of its sources left a mark in the same transaction as its buffered rows (0006), so a mark
-- above the frontier is a pending change. One index probe per source.
CREATE OR REPLACE FUNCTION pgtrickle._has_pending(p_id bigint, p_frontier pg_snapshot, p_frontier_xid xid8)
RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  RETURN EXISTS (
    SELECT 1 FROM pgtrickle.pgt_dependencies d
     WHERE d.pgt_id = p_id
       AND (d.source_type IN ('MATVIEW', 'FOREIGN_TABLE')
            OR (d.cdc_mode = 'TRIGGER'
                AND EXISTS (SELECT 1 FROM pgtrickle.pgt_change_marks m
                             WHERE m.source_relid = d.source_relid
                               AND m.xid >= pg_snapshot_xmin(p_frontier)
                               AND NOT pgtrickle._seen(m.xid, p_frontier, p_frontier_xid)))));
END
$fn$;

-- As in 0002.
CREATE OR REPLACE FUNCTION pgtrickle._caller()
RETURNS oid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  RETURN (SELECT r.oid FROM pg_roles r
           WHERE r.rolname = CASE current_setting('role')
                               WHEN 'none' THEN session_user::text
                               ELSE current_setting('role') END);
END
$fn$;

-- As in 0005.
CREATE OR REPLACE FUNCTION pgtrickle._rls_applies(p_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  RETURN EXISTS (
    SELECT 1
      FROM pgtrickle.pgt_stream_tables st
      JOIN pg_roles o ON o.oid = st.pgt_owner
      JOIN pgtrickle.pgt_dependencies d ON d.pgt_id = st.pgt_id
      JOIN pg_class c ON c.oid = d.source_relid
     WHERE st.pgt_id = p_id AND c.relrowsecurity AND NOT o.rolsuper AND NOT o.rolbypassrls
       AND (c.relforcerowsecurity OR c.relowner <> st.pgt_owner));
END
$fn$;

-- As in 0003, with the trim bounded below by where the last one stopped. Buffers are trimmed in
-- name order, and a buffer another refresh is trimming at that moment is left to it (SKIP
-- LOCKED): that one deletes the same rows or more.
CREATE OR REPLACE FUNCTION pgtrickle._refresh_end(
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
  v_from xid8;
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
    SELECT ct.source_relid, ct.buffer_name, min(pg_snapshot_xmin(s.frontier)) AS horizon,
           bool_and(s.frontier IS NOT NULL) AS all_set
      FROM pgtrickle.pgt_dependencies mine
      JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = mine.source_relid
      JOIN pgtrickle.pgt_dependencies d ON d.source_relid = ct.source_relid AND d.cdc_mode = 'TRIGGER'
      JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id = d.pgt_id
     WHERE mine.pgt_id = p_id AND mine.cdc_mode = 'TRIGGER'
     GROUP BY ct.source_relid, ct.buffer_name
     ORDER BY ct.buffer_name
  LOOP
    CONTINUE WHEN NOT src.all_set;
    SELECT ct.trimmed_below INTO v_from
      FROM pgtrickle.pgt_change_tracking ct
     WHERE ct.source_relid = src.source_relid AND coalesce(ct.trimmed_below < src.horizon, true)
       FOR UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    EXECUTE format('DELETE FROM pgtrickle_changes.%I WHERE xid >= $1 AND xid < $2', src.buffer_name)
      USING coalesce(v_from, '0'::xid8), src.horizon;
    UPDATE pgtrickle.pgt_change_tracking ct SET trimmed_below = src.horizon
     WHERE ct.source_relid = src.source_relid;
  END LOOP;

  PERFORM pg_notify('pg_trickle_refresh', json_build_object(
    'pgt_id', p_id, 'schema', st.pgt_schema, 'name', st.pgt_name, 'action', p_action,
    'rows_inserted', p_inserted, 'rows_deleted', p_deleted, 'changes_consumed', v_consumed,
    'refresh_id', v_refresh_id)::text);
  RETURN v_refresh_id;
END
$fn$;
