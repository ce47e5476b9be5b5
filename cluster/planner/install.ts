// Compiles a stream table's defining query and installs the plan, or records why it is
// refreshed in FULL mode. Runs with the rights of the connection's role, which must own the
// stream table (a node sets its role to the owner first).
import type pg from 'pg';
import { UnsupportedConstruct } from '../../sql/compiler/errors.js';
import { compile, type Plan } from '../../sql/compiler/plan.js';
import { loadFacts } from './facts.js';

export type PlanOutcome = { mode: 'DIFFERENTIAL'; plan: Plan } | { mode: 'FULL'; reason: string };

export async function planStreamTable(client: pg.ClientBase, pgtId: string): Promise<PlanOutcome> {
  const { facts, storage, refreshMode } = await loadFacts(client, pgtId);
  if (refreshMode === 'FULL') {
    await client.query('SELECT pgtrickle._record_fallback($1, $2)', [pgtId, 'refresh mode is FULL']);
    return { mode: 'FULL', reason: 'refresh mode is FULL' };
  }
  let plan: Plan;
  try {
    plan = await compile(facts, storage);
  } catch (err) {
    if (!(err instanceof UnsupportedConstruct)) throw err;
    await client.query('SELECT pgtrickle._record_fallback($1, $2)', [pgtId, err.message]);
    return { mode: 'FULL', reason: err.message };
  }
  await client.query('SELECT pgtrickle._install_plan($1, $2, $3, $4, $5, $6)', [
    pgtId,
    plan.strategy,
    JSON.stringify(plan.hiddenColumns),
    plan.indexColumns,
    plan.fullSql,
    plan.deltaSql,
  ]);
  return { mode: 'DIFFERENTIAL', plan };
}
