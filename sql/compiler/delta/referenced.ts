// The column names a query can observe, so that a change to none of them (an UPDATE of other
// columns) is left out of the delta: its old and new rows would cancel anyway, after a join that
// costs as much as a real change. Names, not (relation, column) pairs: an over-approximation that
// needs no scoping of aliases, and is never smaller than what the query reads.
//
// Scopes are followed only to tell a column from a whole row. PostgreSQL reads a bare name as a
// column when some FROM item at its level or an enclosing one has a column of that name, and as
// the row of a FROM item only otherwise; TPC-H Q8 and Q9 name a subquery's column `nation`, the
// name of a table they read. Where a FROM item's columns are not all known (a function), a name
// is taken for a whole row unless a known column has it.
import { type Node, parseStatements, renamedBy, type SelectStmt, stringValue } from '../ast.js';
import type { CompileFacts } from '../facts.js';
import { figure } from './names.js';

/** Every column, when the query reads whole rows (`*`, `t.*`, a row named by its alias, NATURAL). */
export type Referenced = ReadonlySet<string> | 'all';

/** A FROM item as names resolve against it: its reference name and its columns, when known. */
interface Item {
  refname?: string;
  columns?: ReadonlySet<string>;
  /** A join's two sides, whose names stay visible through it. */
  parts?: Item[];
}

/** Levels of FROM items, outermost first; a name resolves against all of them. */
type Levels = readonly (readonly Item[])[];

type Ctes = ReadonlyMap<string, string[] | undefined>;

class WholeRow extends Error {}

export function referencedColumns(facts: CompileFacts): Referenced {
  const reader = new Reader(facts);
  try {
    for (const text of [facts.definingQuery, ...facts.relations.flatMap((r) => r.viewDefinition ?? [])]) {
      for (const stmt of parseStatements(text)) reader.visit(stmt, [], new Map());
    }
  } catch (err) {
    if (err instanceof WholeRow) return 'all';
    throw err;
  }
  return reader.names;
}

class Reader {
  readonly names = new Set<string>();
  private readonly facts: CompileFacts;

  constructor(facts: CompileFacts) {
    this.facts = facts;
  }

  visit(node: unknown, levels: Levels, ctes: Ctes): void {
    if (Array.isArray(node)) {
      for (const item of node) this.visit(item, levels, ctes);
      return;
    }
    if (node === null || typeof node !== 'object') return;
    const n = node as Node;
    if ('SelectStmt' in n) {
      this.select(n.SelectStmt, levels, ctes);
      return;
    }
    if ('ColumnRef' in n) {
      this.columnRef((n.ColumnRef.fields ?? []) as Node[], levels);
      return;
    }
    for (const value of Object.values(node)) this.visit(value, levels, ctes);
  }

  private select(stmt: SelectStmt, levels: Levels, outer: Ctes): void {
    const ctes = new Map(outer);
    for (const cte of stmt.withClause?.ctes ?? []) {
      if (!('CommonTableExpr' in cte)) continue;
      const { ctename, ctequery, aliascolnames } = cte.CommonTableExpr;
      if (!ctename) continue;
      // A recursive CTE reads itself before its columns are known.
      ctes.set(ctename, undefined);
      this.visit(ctequery, levels, ctes);
      const names = outputs(ctequery);
      ctes.set(ctename, names && renamedBy(names, aliascolnames as Node[] | undefined));
    }
    if (stmt.op && stmt.op !== 'SETOP_NONE') {
      this.visit(stmt.larg ? { SelectStmt: stmt.larg } : undefined, levels, ctes);
      this.visit(stmt.rarg ? { SelectStmt: stmt.rarg } : undefined, levels, ctes);
      const own = [{ columns: columnSet(outputs({ SelectStmt: stmt }), undefined) }];
      this.visit([stmt.sortClause, stmt.limitCount, stmt.limitOffset], [...levels, own], ctes);
      return;
    }
    const items: Item[] = [];
    for (const from of (stmt.fromClause ?? []) as Node[])
      items.push(this.fromItem(from, levels, items, ctes));
    const { fromClause: _f, withClause: _w, larg: _l, rarg: _r, ...rest } = stmt;
    this.visit(rest, [...levels, items], ctes);
  }

  /** Visits a FROM item's own expressions in their scopes and returns what names it offers. */
  private fromItem(node: Node, levels: Levels, preceding: readonly Item[], ctes: Ctes): Item {
    if ('RangeVar' in node) {
      const { relname, schemaname, alias } = node.RangeVar;
      const cte = !schemaname && relname !== undefined && ctes.has(relname);
      const relation = this.facts.relations.find(
        (r) => r.name === relname && (schemaname === undefined || r.schema === schemaname),
      );
      const own = cte ? ctes.get(relname as string) : relation?.columns.map((c) => c.name);
      return {
        refname: alias?.aliasname ?? relname,
        columns: columnSet(own, alias?.colnames as Node[] | undefined),
      };
    }
    if ('RangeSubselect' in node) {
      const { subquery, alias, lateral } = node.RangeSubselect;
      this.visit(subquery, lateral ? [...levels, preceding] : levels, ctes);
      return {
        refname: alias?.aliasname,
        columns: columnSet(outputs(subquery), alias?.colnames as Node[] | undefined),
      };
    }
    if ('JoinExpr' in node) {
      const join = node.JoinExpr;
      if (join.isNatural) throw new WholeRow();
      const left = this.fromItem(join.larg as Node, levels, preceding, ctes);
      const right = this.fromItem(join.rarg as Node, levels, [...preceding, left], ctes);
      for (const u of (join.usingClause ?? []) as Node[]) {
        const name = stringValue(u);
        if (name) this.names.add(name);
      }
      this.visit(join.quals, [...levels, [left, right]], ctes);
      const columns =
        left.columns && right.columns && !join.alias
          ? new Set([...left.columns, ...right.columns])
          : undefined;
      return { refname: join.alias?.aliasname, columns, parts: [left, right] };
    }
    // Functions in FROM (and anything rarer) read the items before them. Of their columns, only
    // those named by column aliases are known.
    this.visit(node, [...levels, preceding], ctes);
    const alias = (Object.values(node)[0] as { alias?: { aliasname?: string; colnames?: Node[] } }).alias;
    const named = (alias?.colnames ?? []).flatMap((c) => stringValue(c) ?? []);
    return { refname: alias?.aliasname, columns: named.length > 0 ? new Set(named) : undefined };
  }

  private columnRef(fields: Node[], levels: Levels): void {
    if (fields.some((f) => 'A_Star' in f)) throw new WholeRow();
    const last = stringValue(fields.at(-1));
    if (!last) return;
    this.names.add(last);
    const items = flatten(levels);
    if (fields.length === 1) {
      if (items.some((i) => i.columns?.has(last))) return;
      if (items.some((i) => i.refname === last) || this.isRelationName(last)) throw new WholeRow();
      return;
    }
    const qualifier = stringValue(fields.at(-2));
    if (fields.length === 2 && items.some((i) => i.refname === qualifier && i.columns?.has(last))) return;
    // `schema.table` as a row, or a field of a column of unknown type.
    if (items.some((i) => i.refname === last) || this.isRelationName(last)) throw new WholeRow();
  }

  private isRelationName(name: string): boolean {
    return this.facts.relations.some((r) => r.name === name);
  }
}

/** The items of every level, with the items a join holds, which keep their own names. */
function flatten(levels: Levels): Item[] {
  const out: Item[] = [];
  const add = (item: Item) => {
    out.push(item);
    for (const part of item.parts ?? []) add(part);
  };
  for (const level of levels) for (const item of level) add(item);
  return out;
}

/** The output column names of a query, as PostgreSQL names them, or undefined when some are not known. */
function outputs(node: Node | undefined): string[] | undefined {
  if (!node || !('SelectStmt' in node)) return undefined;
  const stmt = node.SelectStmt;
  if (stmt.op && stmt.op !== 'SETOP_NONE') return outputs(stmt.larg ? { SelectStmt: stmt.larg } : undefined);
  if (stmt.valuesLists) return undefined;
  const names: string[] = [];
  for (const target of (stmt.targetList ?? []) as Node[]) {
    if (!('ResTarget' in target)) return undefined;
    const name = target.ResTarget.name ?? figure(target.ResTarget.val);
    if (name === undefined) return undefined;
    names.push(name);
  }
  return names;
}

/** The names a FROM item or CTE offers, after its column aliases, when all are known. */
function columnSet(
  names: string[] | undefined,
  colnames: Node[] | undefined,
): ReadonlySet<string> | undefined {
  return names && new Set(renamedBy(names, colnames));
}
