-- 0009: a plan strategy for window functions on top of a query, which replaces the rows of the
-- window partitions a refresh's changes touch (sql/compiler/delta/window.ts).
ALTER TABLE pgtrickle.pgt_plans
  DROP CONSTRAINT pgt_plans_strategy_check,
  ADD CONSTRAINT pgt_plans_strategy_check
    CHECK (strategy IN ('multiset', 'keyed', 'aggregate', 'aggregate_recompute', 'distinct', 'partition_recompute'));
