// The compiler's entry point: defining query and catalog facts in, a refresh plan out. Pure and
// deterministic: the same query and facts give the same plan text.
import { ident, qualified } from '../../shared/pg/quote.js';
import { analyze } from './analyze.js';
import { loadParser } from './ast.js';
import { aggregateRoot, distinctRoot, type RootPlan } from './delta/aggregate.js';
import { queryArms } from './delta/arms.js';
import { keyColumns, keyedRoot } from './delta/keyed.js';
import { multisetApply, multisetFull, ROW_ID } from './delta/multiset.js';
import { referencedColumns } from './delta/referenced.js';
import { Sources } from './delta/sources.js';
import { deltaStatement } from './delta/statement.js';
import { renameTargets } from './delta/variants.js';
import { windowRoot } from './delta/window.js';
import type { CompileFacts } from './facts.js';

export interface Plan {
  strategy: 'multiset' | 'keyed' | RootPlan['strategy'];
  /** Columns the storage table needs besides the visible ones. */
  hiddenColumns: { name: string; type: string }[];
  /** Hidden columns to index: how a refresh finds the current version of a row. */
  indexColumns: string[];
  /** INSERT that fills the emptied storage table from the sources, hidden columns included. */
  fullSql: string;
  /** One statement: $1 previous frontier, $2 its own xid; returns snapshot, inserted, deleted, truncated, consumed. */
  deltaSql: string;
  /**
   * The same statement for a large batch of changes (pgtrickle.large_delta_rows), where joins
   * are planned: it reads each buffer through pgtrickle._pending_many or _pending_few, which
   * PostgreSQL estimates at 1,000 or 10 rows (by the table's size) whatever the buffer's
   * statistics say. Only for statements that read more than one source.
   */
  deltaSqlMany?: string;
  sources: { relid: number; schema: string; name: string; buffer: string }[];
}

export interface StorageFacts {
  schema: string;
  name: string;
}

export async function compile(facts: CompileFacts, storage: StorageFacts): Promise<Plan> {
  await loadParser();
  return compileLoaded(facts, storage);
}

/** compile() once the parser is loaded. */
export function compileLoaded(facts: CompileFacts, storage: StorageFacts): Plan {
  const op = analyze(facts);
  const sources = new Sources(referencedColumns(facts), facts.aggregateNames);
  const columns = facts.outputColumns.map((c) => c.name);
  const table = qualified(storage.schema, storage.name);
  const ctx = { storage: table, columns, sources, facts };
  const root = ((): RootPlan | (Omit<RootPlan, 'strategy'> & { strategy: 'multiset' | 'keyed' }) => {
    switch (op.kind) {
      case 'select':
      case 'unionAll':
      case 'window': {
        const partitioned = op.kind === 'unionAll' ? undefined : windowRoot(op, ctx);
        if (partitioned) return partitioned;
        const keys = op.kind === 'select' ? keyColumns(op) : undefined;
        if (op.kind === 'select' && keys) return { strategy: 'keyed', ...keyedRoot(op, keys, ctx) };
        return {
          strategy: 'multiset',
          hiddenColumns: [{ name: ROW_ID, type: 'bigint' }],
          indexColumns: [ROW_ID],
          fullSql: multisetFull(table, columns, facts.definingQuery),
          arms: queryArms(op, sources, (_stmt, targets) => renameTargets(targets, columns)),
          apply: multisetApply(table, columns),
        };
      }
      case 'aggregate':
        return aggregateRoot(op, ctx);
      case 'distinct':
        return distinctRoot(op, ctx);
      default: {
        const exhaustive: never = op;
        return exhaustive;
      }
    }
  })();
  const used = sources.list();
  return {
    strategy: root.strategy,
    hiddenColumns: root.hiddenColumns,
    indexColumns: root.indexColumns,
    fullSql: root.fullSql,
    deltaSql: deltaStatement(sources, root.arms, root.apply),
    ...(used.length > 1 ? { deltaSqlMany: deltaStatement(sources, root.arms, root.apply, 'many') } : {}),
    sources: used.map((s) => ({
      relid: s.relation.relid,
      schema: s.relation.schema,
      name: s.relation.name,
      buffer: s.relation.buffer ?? '',
    })),
  };
}

/** The DDL fragment that adds the hidden columns, for ALTER TABLE. */
export function hiddenColumnsDdl(plan: Plan): string {
  return plan.hiddenColumns.map((c) => `ADD COLUMN ${ident(c.name)} ${c.type}`).join(', ');
}
