-- 0007: diamond refresh. A stream table D reading B and C that both read A sees a mixed state of
-- A when B and C refresh at different snapshots. The node refreshes D's group (cluster/dag:
-- the stream tables between the shared ancestors and D) in one REPEATABLE READ transaction, so
-- that B, C and then D are computed from one snapshot of A.

-- Refreshes the upstream members of a group (every id but the last) as a user's
-- refresh_stream_table would (each as its owner, no fencing epoch: leases decide who schedules,
-- never what is correct, I3), then the last id under the node's epoch like _node_refresh, all
-- under the caller's one transaction snapshot. Returns one row per refresh done. A suspended
-- member is left as it is, as its user asked. A member busy with another refresh raises PT003
-- rather than letting D read it half-way: the caller rolls the whole group back and tries again
-- when D is next due.
CREATE FUNCTION pgtrickle._node_refresh_group(p_ids bigint[], p_epoch bigint, p_node text)
RETURNS TABLE (
  pgt_id bigint, refresh_id bigint, action text, rows_inserted bigint, rows_deleted bigint,
  changes_consumed bigint, frontier text, duration_ms float8)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_role text := current_setting('role');
  v_isolation text := current_setting('transaction_isolation');
  v_last bigint := p_ids[cardinality(p_ids)];
  v_member bigint;
  v_owner name;
  v_name text;
  v_id bigint;
  v_suspended boolean;
  v_members bigint[] := '{}';
BEGIN
  -- Under READ COMMITTED each member's refresh would take a snapshot of its own: the very
  -- mixing this function exists to prevent.
  IF v_isolation NOT IN ('repeatable read', 'serializable') THEN
    RAISE EXCEPTION 'pgtrickle._node_refresh_group must run in a REPEATABLE READ transaction, not %', upper(v_isolation)
      USING ERRCODE = 'invalid_transaction_state',
            HINT = 'BEGIN ISOLATION LEVEL REPEATABLE READ before calling it: one snapshot for every member is what makes the group consistent.';
  END IF;
  IF coalesce(cardinality(p_ids), 0) = 0 THEN
    RAISE EXCEPTION 'a refresh group needs at least one stream table' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM set_config('pgtrickle.node_id', p_node, true);

  -- Every refresh lock first, before any work: the sooner they are all held, the less time
  -- another session has to refresh a member after this snapshot (40001) or to take one (PT003).
  -- D's comes first, so that a stale epoch (PT001) fails before any member is locked.
  FOREACH v_member IN ARRAY v_last || p_ids[1:cardinality(p_ids) - 1] LOOP
    SELECT r.rolname, format('%I.%I', st.pgt_schema, st.pgt_name), st.status = 'SUSPENDED'
      INTO v_owner, v_name, v_suspended
      FROM pgtrickle.pgt_stream_tables st JOIN pg_roles r ON r.oid = st.pgt_owner
     WHERE st.pgt_id = v_member;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'stream table with id % does not exist', v_member USING ERRCODE = 'undefined_table';
    END IF;
    CONTINUE WHEN v_suspended AND v_member <> v_last;
    IF v_member <> v_last THEN
      v_members := v_members || v_member;
    END IF;
    IF v_owner <> current_user THEN
      PERFORM set_config('role', v_owner, true);
    END IF;
    IF NOT EXISTS (SELECT FROM pgtrickle._refresh_begin(v_member, CASE WHEN v_member = v_last THEN p_epoch END)) THEN
      RAISE EXCEPTION 'group member busy: stream table % is being refreshed by another session', v_name
        USING ERRCODE = 'PT003',
              HINT = 'The group is refreshed together or not at all; it is tried again when it is next due.';
    END IF;
    PERFORM set_config('role', v_role, true);
  END LOOP;

  -- With the locks held, _refresh returns NULL only when a member has nothing new.
  FOREACH v_member IN ARRAY v_members LOOP
    SELECT r.rolname INTO v_owner
      FROM pgtrickle.pgt_stream_tables st JOIN pg_roles r ON r.oid = st.pgt_owner
     WHERE st.pgt_id = v_member;
    IF v_owner <> current_user THEN
      PERFORM set_config('role', v_owner, true);
    END IF;
    v_id := pgtrickle._refresh(v_member, NULL, 'SCHEDULER');
    PERFORM set_config('role', v_role, true);
    IF v_id IS NOT NULL THEN
      RETURN QUERY
        SELECT v_member, h.refresh_id, h.action, h.rows_inserted, h.rows_deleted, h.changes_consumed,
               h.frontier::text, extract(epoch FROM h.end_time - h.start_time)::float8 * 1000
          FROM pgtrickle.pgt_refresh_history h
         WHERE h.refresh_id = v_id;
    END IF;
  END LOOP;

  RETURN QUERY SELECT v_last, r.* FROM pgtrickle._node_refresh(v_last, p_epoch, p_node) r;
END
$fn$;

COMMENT ON FUNCTION pgtrickle._node_refresh_group(bigint[], bigint, text) IS
  'A diamond join''s group refreshed in one snapshot (REPEATABLE READ): upstream members as their owners, the last under the node''s epoch.';
