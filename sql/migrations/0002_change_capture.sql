-- 0002: change capture. Statement-level AFTER triggers with transition tables write every change
-- of a source into pgtrickle_changes.changes_<relid>, one call per statement.

-- Whether a frontier (snapshot + the xid of the refresh that took it) already covers xid x.
CREATE FUNCTION pgtrickle._seen(x xid8, snap pg_snapshot, own xid8)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT coalesce(x = own, false) OR coalesce(pg_catalog.pg_visible_in_snapshot(x, snap), false) $$;

-- The role on whose behalf a SECURITY DEFINER function runs. Inside such a function current_user
-- is the definer, but the "role" setting and session_user still name the caller.
CREATE FUNCTION pgtrickle._caller()
RETURNS oid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.oid FROM pg_roles r
  WHERE r.rolname = CASE current_setting('role')
                      WHEN 'none' THEN session_user::text
                      ELSE current_setting('role') END
$$;

CREATE FUNCTION pgtrickle._relname(p_relid oid)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(
    (SELECT format('%I.%I', n.nspname, c.relname)
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_relid),
    format('OID %s (table no longer exists)', p_relid))
$$;

-- One statement of capture per trigger call: v_seq is drawn once so all rows of the statement
-- share its position in the transaction.
CREATE FUNCTION pgtrickle._create_capture_function(p_name name, p_body text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  EXECUTE format(
    $f$CREATE FUNCTION pgtrickle_changes.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
       SET search_path = pg_catalog, pg_temp AS %L$f$,
    p_name,
    format(E'DECLARE v_seq bigint := nextval(%L);\nBEGIN\n%s\nRETURN NULL;\nEND', 'pgtrickle_changes.op_seq', p_body));
  EXECUTE format('REVOKE ALL ON FUNCTION pgtrickle_changes.%I() FROM PUBLIC', p_name);
END
$fn$;

-- Installs capture on a source if it has none. UPDATEs are paired by primary key when the
-- source has one ('U' rows carry old and new values); otherwise they are a 'D' and an 'I'
-- of the same op_seq. Buffer columns are named by attnum, so any column name fits.
CREATE FUNCTION pgtrickle._ensure_cdc(p_relid oid)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_rel      text := pgtrickle._relname(p_relid);
  v_buf      name := 'changes_' || p_relid;
  v_attnums  smallint[];
  v_keys     smallint[];
  v_coldefs  text;
  v_new_cols text;
  v_old_cols text;
  v_new_vals text;
  v_old_vals text;
  v_ins_sql  text;
  v_del_sql  text;
  v_upd_sql  text;
BEGIN
  IF EXISTS (SELECT 1 FROM pgtrickle.pgt_change_tracking WHERE source_relid = p_relid) THEN
    RETURN;
  END IF;

  SELECT array_agg(a.attnum ORDER BY a.attnum),
         string_agg(format('%I %s, %I %s', 'new_' || a.attnum, format_type(a.atttypid, a.atttypmod),
                                            'old_' || a.attnum, format_type(a.atttypid, a.atttypmod)),
                    ', ' ORDER BY a.attnum),
         string_agg(format('%I', 'new_' || a.attnum), ', ' ORDER BY a.attnum),
         string_agg(format('%I', 'old_' || a.attnum), ', ' ORDER BY a.attnum),
         string_agg(format('n.%I', a.attname), ', ' ORDER BY a.attnum),
         string_agg(format('o.%I', a.attname), ', ' ORDER BY a.attnum)
    INTO v_attnums, v_coldefs, v_new_cols, v_old_cols, v_new_vals, v_old_vals
    FROM pg_attribute a
   WHERE a.attrelid = p_relid AND a.attnum > 0 AND NOT a.attisdropped;

  IF v_attnums IS NULL THEN
    RAISE EXCEPTION 'cannot capture changes of %: it has no columns', v_rel
      USING ERRCODE = 'feature_not_supported';
  END IF;

  -- int2vector is 0-based; unnest re-bases it to 1.
  SELECT ARRAY(SELECT unnest(i.indkey::smallint[])) INTO v_keys
    FROM pg_index i WHERE i.indrelid = p_relid AND i.indisprimary;

  EXECUTE format(
    'CREATE TABLE pgtrickle_changes.%I (
       change_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
       op_seq bigint NOT NULL,
       action "char" NOT NULL CHECK (action IN (''I'', ''D'', ''U'', ''T'')),
       %s)', v_buf, v_coldefs);
  EXECUTE format('CREATE INDEX %I ON pgtrickle_changes.%I (xid)', v_buf || '_xid_idx', v_buf);
  -- A refresh must notice a TRUNCATE among its changes without reading all of them.
  EXECUTE format('CREATE INDEX %I ON pgtrickle_changes.%I (xid) WHERE action = ''T''', v_buf || '_trunc_idx', v_buf);
  EXECUTE format('COMMENT ON TABLE pgtrickle_changes.%I IS %L', v_buf,
                 'pgtrickle change buffer of ' || v_rel);

  v_ins_sql := format(
    $s$INSERT INTO pgtrickle_changes.%I (op_seq, action, %s) SELECT v_seq, 'I', %s FROM __pgt_new n;$s$,
    v_buf, v_new_cols, v_new_vals);
  v_del_sql := format(
    $s$INSERT INTO pgtrickle_changes.%I (op_seq, action, %s) SELECT v_seq, 'D', %s FROM __pgt_old o;$s$,
    v_buf, v_old_cols, v_old_vals);

  IF v_keys IS NOT NULL THEN
    -- The join renames both sides' columns (o_<attnum>, n_<attnum>) so the outer SELECT can
    -- tell an unmatched old row from an unmatched new one by a key column being NULL.
    SELECT format(
      $s$INSERT INTO pgtrickle_changes.%I (op_seq, action, %s, %s)
           SELECT v_seq, CASE WHEN j.%I IS NULL THEN 'I' WHEN j.%I IS NULL THEN 'D' ELSE 'U' END, %s, %s
             FROM (SELECT %s, %s FROM __pgt_old o FULL JOIN __pgt_new n ON %s) j;$s$,
      v_buf, v_new_cols, v_old_cols,
      'o_' || v_keys[1], 'n_' || v_keys[1],
      string_agg(format('j.%I', 'n_' || a.attnum), ', ' ORDER BY a.attnum),
      string_agg(format('j.%I', 'o_' || a.attnum), ', ' ORDER BY a.attnum),
      string_agg(format('o.%I AS %I', a.attname, 'o_' || a.attnum), ', ' ORDER BY a.attnum),
      string_agg(format('n.%I AS %I', a.attname, 'n_' || a.attnum), ', ' ORDER BY a.attnum),
      (SELECT string_agg(format('o.%I = n.%I', k.attname, k.attname), ' AND ')
         FROM unnest(v_keys) u(attnum) JOIN pg_attribute k ON k.attrelid = p_relid AND k.attnum = u.attnum))
      INTO v_upd_sql
      FROM pg_attribute a
     WHERE a.attrelid = p_relid AND a.attnum > 0 AND NOT a.attisdropped;
  ELSE
    v_upd_sql := v_del_sql || E'\n' || v_ins_sql;
  END IF;

  PERFORM pgtrickle._create_capture_function(v_buf || '_ins', v_ins_sql);
  PERFORM pgtrickle._create_capture_function(v_buf || '_upd', v_upd_sql);
  PERFORM pgtrickle._create_capture_function(v_buf || '_del', v_del_sql);
  PERFORM pgtrickle._create_capture_function(v_buf || '_trunc',
    format($s$INSERT INTO pgtrickle_changes.%I (op_seq, action) VALUES (v_seq, 'T');$s$, v_buf));

  EXECUTE format('CREATE TRIGGER pgtrickle_cdc_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS __pgt_new
                  FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle_changes.%I()', v_rel, v_buf || '_ins');
  EXECUTE format('CREATE TRIGGER pgtrickle_cdc_upd AFTER UPDATE ON %s
                  REFERENCING OLD TABLE AS __pgt_old NEW TABLE AS __pgt_new
                  FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle_changes.%I()', v_rel, v_buf || '_upd');
  EXECUTE format('CREATE TRIGGER pgtrickle_cdc_del AFTER DELETE ON %s REFERENCING OLD TABLE AS __pgt_old
                  FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle_changes.%I()', v_rel, v_buf || '_del');
  EXECUTE format('CREATE TRIGGER pgtrickle_cdc_trunc AFTER TRUNCATE ON %s
                  FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle_changes.%I()', v_rel, v_buf || '_trunc');

  INSERT INTO pgtrickle.pgt_change_tracking (source_relid, buffer_name, captured_attnums, key_attnums)
  VALUES (p_relid, v_buf, v_attnums, v_keys);
END
$fn$;

-- Removes capture from a source that no stream table reads any more. Triggers go first, by
-- name, so that psql users see no "drop cascades to trigger" notices.
CREATE FUNCTION pgtrickle._drop_cdc(p_relid oid)
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
    IF v_table_exists THEN
      EXECUTE format('DROP TRIGGER %I ON %s', 'pgtrickle_cdc_' || v_kind, pgtrickle._relname(p_relid));
    END IF;
    EXECUTE format('DROP FUNCTION pgtrickle_changes.%I()', v_buf || '_' || v_kind);
  END LOOP;
  EXECUTE format('DROP TABLE pgtrickle_changes.%I', v_buf);
END
$fn$;

REVOKE ALL ON FUNCTION pgtrickle._ensure_cdc(oid), pgtrickle._drop_cdc(oid),
  pgtrickle._create_capture_function(name, text) FROM PUBLIC;
