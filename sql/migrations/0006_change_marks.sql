-- 0006: change marks. The source watchers' check used to read every change buffer in one
-- statement of one UNION arm per buffer; planning that statement grows with the number of
-- sources (about a second for 1,000). Now each transaction that changes a captured source
-- leaves one row here, and _pending is one fixed statement over this table and the catalog.

CREATE TABLE pgtrickle.pgt_change_marks (
  source_relid oid  NOT NULL,
  xid          xid8 NOT NULL,
  PRIMARY KEY (source_relid, xid)
);

GRANT SELECT ON pgtrickle.pgt_change_marks TO PUBLIC;

COMMENT ON TABLE pgtrickle.pgt_change_marks IS
  'One row per (captured source, writing transaction) whose changes some stream table may not have consumed yet.';

-- Fires after the capture triggers of the same statement. Only statements that changed rows
-- leave a mark, and a transaction marks a source once: concurrent writers insert different
-- keys, so they never wait on each other. Each event's transition table is the one the capture
-- trigger already asked for, so PostgreSQL keeps no second copy.
CREATE FUNCTION pgtrickle._mark_change()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  CASE TG_OP
    WHEN 'TRUNCATE' THEN
      NULL;
    WHEN 'DELETE' THEN
      IF NOT EXISTS (SELECT 1 FROM __pgt_old) THEN
        RETURN NULL;
      END IF;
    ELSE
      IF NOT EXISTS (SELECT 1 FROM __pgt_new) THEN
        RETURN NULL;
      END IF;
  END CASE;
  INSERT INTO pgtrickle.pgt_change_marks (source_relid, xid)
  VALUES (TG_RELID, pg_current_xact_id())
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$fn$;

CREATE FUNCTION pgtrickle._install_marks(p_relid oid)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_rel text := pgtrickle._relname(p_relid);
BEGIN
  EXECUTE format('CREATE TRIGGER pgtrickle_mark_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS __pgt_new
                  FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle._mark_change()', v_rel);
  EXECUTE format('CREATE TRIGGER pgtrickle_mark_upd AFTER UPDATE ON %s REFERENCING NEW TABLE AS __pgt_new
                  FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle._mark_change()', v_rel);
  EXECUTE format('CREATE TRIGGER pgtrickle_mark_del AFTER DELETE ON %s REFERENCING OLD TABLE AS __pgt_old
                  FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle._mark_change()', v_rel);
  EXECUTE format('CREATE TRIGGER pgtrickle_mark_trunc AFTER TRUNCATE ON %s
                  FOR EACH STATEMENT EXECUTE FUNCTION pgtrickle._mark_change()', v_rel);
END
$fn$;

-- Capture starts and stops with its pgt_change_tracking row (_ensure_cdc, _drop_cdc), and so do
-- the marks, without changing those functions.
CREATE FUNCTION pgtrickle._track_marks()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_kind text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM pgtrickle._install_marks(NEW.source_relid);
    RETURN NULL;
  END IF;
  DELETE FROM pgtrickle.pgt_change_marks WHERE source_relid = OLD.source_relid;
  IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = OLD.source_relid) THEN
    FOREACH v_kind IN ARRAY ARRAY['ins', 'upd', 'del', 'trunc'] LOOP
      EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'pgtrickle_mark_' || v_kind,
                     pgtrickle._relname(OLD.source_relid));
    END LOOP;
  END IF;
  RETURN NULL;
END
$fn$;

CREATE TRIGGER pgt_change_tracking_marks AFTER INSERT OR DELETE ON pgtrickle.pgt_change_tracking
  FOR EACH ROW EXECUTE FUNCTION pgtrickle._track_marks();

-- A mark is settled once it lies below the xmin of every dependent's frontier, the same horizon
-- at which _refresh trims the change buffers; a completed refresh has just moved one frontier.
CREATE FUNCTION pgtrickle._trim_marks()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  DELETE FROM pgtrickle.pgt_change_marks m
   USING (SELECT d.source_relid, min(pg_snapshot_xmin(s.frontier)) AS horizon,
                 bool_and(s.frontier IS NOT NULL) AS all_set
            FROM pgtrickle.pgt_dependencies mine
            JOIN pgtrickle.pgt_dependencies d ON d.source_relid = mine.source_relid AND d.cdc_mode = 'TRIGGER'
            JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id = d.pgt_id
           WHERE mine.pgt_id = NEW.pgt_id AND mine.cdc_mode = 'TRIGGER'
           GROUP BY d.source_relid) h
   WHERE m.source_relid = h.source_relid AND h.all_set AND m.xid < h.horizon;
  RETURN NULL;
END
$fn$;

CREATE TRIGGER pgt_refresh_history_trim_marks AFTER INSERT ON pgtrickle.pgt_refresh_history
  FOR EACH ROW WHEN (NEW.status = 'COMPLETED') EXECUTE FUNCTION pgtrickle._trim_marks();

REVOKE ALL ON FUNCTION pgtrickle._mark_change(), pgtrickle._install_marks(oid), pgtrickle._track_marks(),
  pgtrickle._trim_marks() FROM PUBLIC;

-- Sources captured before this migration: their triggers, and a mark for every transaction whose
-- changes are still buffered.
DO $do$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT source_relid, buffer_name FROM pgtrickle.pgt_change_tracking LOOP
    PERFORM pgtrickle._install_marks(t.source_relid);
    EXECUTE format('INSERT INTO pgtrickle.pgt_change_marks (source_relid, xid)
                    SELECT DISTINCT %s::oid, xid FROM pgtrickle_changes.%I ON CONFLICT DO NOTHING',
                   t.source_relid, t.buffer_name);
  END LOOP;
END
$do$;

-- Which of p_ids have changes their frontier has not seen: one index probe per (stream table,
-- source) pair, whatever the number of sources. Stream tables never refreshed have no frontier
-- and are not listed: they refresh anyway. Materialized views and foreign tables cannot tell,
-- so a stream table reading one is always listed.
CREATE OR REPLACE FUNCTION pgtrickle._pending(p_ids bigint[])
RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT DISTINCT d.pgt_id
    FROM pgtrickle.pgt_dependencies d
    JOIN pgtrickle.pgt_stream_tables s ON s.pgt_id = d.pgt_id
   WHERE d.pgt_id = ANY (p_ids)
     AND (d.source_type IN ('MATVIEW', 'FOREIGN_TABLE')
          OR (d.cdc_mode = 'TRIGGER'
              AND EXISTS (SELECT 1 FROM pgtrickle.pgt_change_marks m
                           WHERE m.source_relid = d.source_relid
                             AND m.xid >= pg_snapshot_xmin(s.frontier)
                             AND NOT pgtrickle._seen(m.xid, s.frontier, s.frontier_xid))))
$fn$;
