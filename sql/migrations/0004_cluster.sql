-- 0004: what refresh nodes need from the catalog: fencing epochs granted with leases (I3),
-- refreshes stamped with the node that ran them, the one-query change check of source
-- watchers, and failures recorded outside the refresh transaction that rolled back.

-- Called by the coordinator when it grants a stream table's lease: a node still holding the
-- previous epoch is refused by _refresh (PT001). Waits for a refresh in progress, which
-- commits under the epoch it began with. NULL when the stream table no longer exists.
CREATE FUNCTION pgtrickle._grant_epoch(p_id bigint)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  UPDATE pgtrickle.pgt_stream_tables SET fencing_epoch = fencing_epoch + 1
   WHERE pgt_id = p_id
  RETURNING fencing_epoch
$$;

-- History rows written while pgtrickle.node_id is set (by _node_refresh) name that node, so
-- tests and operators can tell which node refreshed, and under which epoch.
CREATE FUNCTION pgtrickle._stamp_node()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  NEW.node_id := coalesce(NEW.node_id, nullif(current_setting('pgtrickle.node_id', true), ''));
  RETURN NEW;
END
$fn$;

CREATE TRIGGER pgt_refresh_history_node BEFORE INSERT ON pgtrickle.pgt_refresh_history
  FOR EACH ROW EXECUTE FUNCTION pgtrickle._stamp_node();

-- A scheduled refresh in one round trip: as the stream table's owner (like REFRESH
-- MATERIALIZED VIEW), under the node's epoch, in the caller's transaction (I1). Returns the
-- history row, or no row when the refresh was skipped (locked by another session, or nothing
-- changed).
CREATE FUNCTION pgtrickle._node_refresh(p_id bigint, p_epoch bigint, p_node text)
RETURNS TABLE (
  refresh_id bigint, action text, rows_inserted bigint, rows_deleted bigint,
  changes_consumed bigint, frontier text, duration_ms float8)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_owner name;
  v_id bigint;
BEGIN
  SELECT r.rolname INTO v_owner
    FROM pgtrickle.pgt_stream_tables st JOIN pg_roles r ON r.oid = st.pgt_owner
   WHERE st.pgt_id = p_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stream table with id % does not exist', p_id USING ERRCODE = 'undefined_table';
  END IF;
  PERFORM set_config('pgtrickle.node_id', p_node, true);
  IF v_owner <> current_user THEN
    PERFORM set_config('role', v_owner, true);
  END IF;
  v_id := pgtrickle._refresh(p_id, p_epoch, 'SCHEDULER');
  RETURN QUERY
    SELECT h.refresh_id, h.action, h.rows_inserted, h.rows_deleted, h.changes_consumed,
           h.frontier::text, extract(epoch FROM h.end_time - h.start_time)::float8 * 1000
      FROM pgtrickle.pgt_refresh_history h
     WHERE h.refresh_id = v_id;
END
$fn$;

-- The source watchers' check: which of p_ids have changes their frontier has not seen, in one
-- statement whatever the number of sources (one arm per change buffer, each an index range
-- scan from the frontier's xmin). Stream tables never refreshed have no frontier and are not
-- listed: they refresh anyway. Materialized views and foreign tables cannot tell, so a stream
-- table reading one is always listed.
CREATE FUNCTION pgtrickle._pending(p_ids bigint[])
RETURNS SETOF bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_sql text;
BEGIN
  SELECT string_agg(format(
           $s$SELECT d.pgt_id FROM pgtrickle.pgt_dependencies d
                JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id = d.pgt_id
               WHERE d.source_relid = %s AND d.cdc_mode = 'TRIGGER' AND d.pgt_id = ANY ($1)
                 AND EXISTS (SELECT 1 FROM pgtrickle_changes.%I c
                              WHERE c.xid >= pg_snapshot_xmin(s.frontier)
                                AND NOT pgtrickle._seen(c.xid, s.frontier, s.frontier_xid))$s$,
           b.source_relid, b.buffer_name), E'\nUNION\n')
    INTO v_sql
    FROM (SELECT DISTINCT ct.source_relid, ct.buffer_name
            FROM pgtrickle.pgt_dependencies d
            JOIN pgtrickle.pgt_change_tracking ct ON ct.source_relid = d.source_relid
           WHERE d.pgt_id = ANY (p_ids) AND d.cdc_mode = 'TRIGGER') b;
  v_sql := concat_ws(E'\nUNION\n', v_sql,
    $s$SELECT d.pgt_id FROM pgtrickle.pgt_dependencies d
        WHERE d.pgt_id = ANY ($1) AND d.source_type IN ('MATVIEW', 'FOREIGN_TABLE')$s$);
  RETURN QUERY EXECUTE v_sql USING p_ids;
END
$fn$;

-- A scheduled refresh or reinit failed and its transaction rolled back: count the failure,
-- keep the error, write a FAILED history row and alert on pg_trickle_alert. Only the node
-- holding the current epoch records (another node's failure is not this table's news).
-- Returns the new count of consecutive errors, NULL when the epoch is stale.
CREATE FUNCTION pgtrickle._record_failure(
  p_id bigint, p_epoch bigint, p_node text, p_action text, p_message text, p_start timestamptz)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  st pgtrickle.pgt_stream_tables;
BEGIN
  UPDATE pgtrickle.pgt_stream_tables s
     SET consecutive_errors = s.consecutive_errors + 1, last_error = p_message,
         last_error_at = now(), updated_at = now()
   WHERE s.pgt_id = p_id AND s.fencing_epoch = p_epoch
  RETURNING * INTO st;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  INSERT INTO pgtrickle.pgt_refresh_history
    (pgt_id, start_time, end_time, action, status, initiated_by, fencing_epoch, node_id, error_message)
  VALUES (p_id, p_start, clock_timestamp(), p_action, 'FAILED', 'SCHEDULER', p_epoch, p_node, p_message);
  PERFORM pg_notify('pg_trickle_alert', json_build_object(
    'event', 'refresh_failed', 'pgt_id', p_id, 'schema', st.pgt_schema, 'name', st.pgt_name,
    'action', p_action, 'consecutive_errors', st.consecutive_errors, 'error', left(p_message, 2000),
    'node', p_node)::text);
  RETURN st.consecutive_errors;
END
$fn$;

REVOKE ALL ON FUNCTION pgtrickle._grant_epoch(bigint), pgtrickle._pending(bigint[]),
  pgtrickle._record_failure(bigint, bigint, text, text, text, timestamptz) FROM PUBLIC;
