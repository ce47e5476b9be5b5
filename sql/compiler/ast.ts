// Thin helpers over libpg-query's AST: parse, deparse, clone, and build small nodes from SQL text.
// Generated SQL is assembled from these nodes, so expressions of the defining query are reused
// exactly as PostgreSQL printed them.
import type { Node, SelectStmt } from '@pgsql/types';
import { loadModule, parseSync } from 'libpg-query';
import { deparseSync } from 'pgsql-deparser';

export type { Node, SelectStmt };

let loaded: Promise<void> | undefined;

/** libpg-query is WebAssembly: load it once before any synchronous parse. */
export function loadParser(): Promise<void> {
  loaded ??= loadModule();
  return loaded;
}

export function parseStatements(sql: string): Node[] {
  const result = parseSync(sql) as { stmts?: { stmt: Node }[] };
  return (result.stmts ?? []).map((s) => s.stmt);
}

export function deparse(node: Node | Node[]): string {
  return deparseSync(node as never, { pretty: false });
}

export function clone<T>(node: T): T {
  return structuredClone(node);
}

/** A value expression from SQL text that this module built (never from user input). */
export function expr(sql: string): Node {
  const [stmt] = parseStatements(`SELECT ${sql}`);
  const target = selectOf(stmt)?.targetList?.[0];
  if (!target || !('ResTarget' in target) || !target.ResTarget.val)
    throw new Error(`not an expression: ${sql}`);
  return target.ResTarget.val;
}

export function selectOf(node: Node | undefined): SelectStmt | undefined {
  return node && 'SelectStmt' in node ? node.SelectStmt : undefined;
}

export function resTarget(val: Node, name: string): Node {
  return { ResTarget: { name, val } };
}

export function and(parts: (Node | undefined)[]): Node | undefined {
  const args = parts.filter((p): p is Node => p !== undefined);
  if (args.length <= 1) return args[0];
  return { BoolExpr: { boolop: 'AND_EXPR', args } };
}

/** The operands of a top-level AND, flattened; a single condition is its own only conjunct. */
export function conjuncts(node: Node | undefined): Node[] {
  if (!node) return [];
  if ('BoolExpr' in node && node.BoolExpr.boolop === 'AND_EXPR')
    return (node.BoolExpr.args ?? []).flatMap(conjuncts);
  return [node];
}

/** Every node of a tree, depth first, with the key it was found under. */
export function* walk(node: unknown, key = ''): Generator<{ key: string; node: Record<string, unknown> }> {
  if (Array.isArray(node)) {
    for (const item of node) yield* walk(item, key);
  } else if (node !== null && typeof node === 'object') {
    yield { key, node: node as Record<string, unknown> };
    for (const [k, v] of Object.entries(node)) yield* walk(v, k);
  }
}

/** Column names after the column aliases of a FROM item (FROM t AS a(x, y)), which rename by position. */
export function aliasRenamed(node: Node, names: string[]): string[] {
  const holder =
    'RangeVar' in node ? node.RangeVar : 'RangeSubselect' in node ? node.RangeSubselect : undefined;
  return renamedBy(names, holder?.alias?.colnames);
}

/** Column names after a list of column aliases (of a FROM item or a CTE), which rename by position. */
export function renamedBy(names: string[], colnames: Node[] | undefined): string[] {
  const aliases = (colnames ?? []).map((n) => stringValue(n));
  return names.map((n, i) => (i < aliases.length ? (aliases[i] ?? '') : n));
}

/** A CTE of the statement read under a FROM item's alias, its column aliases kept. */
export function cteRef(relname: string, alias: { colnames?: Node[] } | undefined, aliasname: string): Node {
  return { RangeVar: { relname, inh: true, relpersistence: 'p', alias: { ...alias, aliasname } } };
}

export function stringValue(node: Node | undefined): string | undefined {
  return node && 'String' in node ? node.String.sval : undefined;
}
