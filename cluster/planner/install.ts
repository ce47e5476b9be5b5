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
  // A plan with one statement takes the six-argument form, which catalogs before migration 0012
  // have as well (and which there drops a second statement of an earlier plan).
  const args = [
    pgtId,
    plan.strategy,
    JSON.stringify(plan.hiddenColumns),
    plan.indexColumns,
    plan.fullSql,
    plan.deltaSql,
    ...(plan.deltaSqlMany === undefined ? [] : [plan.deltaSqlMany]),
  ];
  await client.query(`SELECT pgtrickle._install_plan(${args.map((_, i) => `$${i + 1}`).join(', ')})`, args);
  return { mode: 'DIFFERENTIAL', plan };
}
