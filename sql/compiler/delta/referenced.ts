// The column names a query can observe, so that a change to none of them (an UPDATE of other
// columns) is left out of the delta: its old and new rows would cancel anyway, after a join that
// costs as much as a real change. Names, not (relation, column) pairs: an over-approximation that
// needs no scoping of aliases, and is never smaller than what the query reads.
import { parseStatements, stringValue, walk } from '../ast.js';
import type { CompileFacts } from '../facts.js';

/** Every column, when the query reads whole rows (`*`, `t.*`, a row named by its alias, NATURAL). */
export type Referenced = ReadonlySet<string> | 'all';

export function referencedColumns(facts: CompileFacts): Referenced {
  const texts = [facts.definingQuery, ...facts.relations.flatMap((r) => r.viewDefinition ?? [])];
  const rowNames = new Set(facts.relations.map((r) => r.name));
  const names = new Set<string>();
  for (const text of texts) {
    for (const { node } of walk(parseStatements(text))) {
      if ('RangeVar' in node || 'RangeSubselect' in node || 'RangeFunction' in node) {
        const alias = (Object.values(node)[0] as { alias?: { aliasname?: string } }).alias?.aliasname;
        if (alias) rowNames.add(alias);
      }
      if ('JoinExpr' in node) {
        const join = node.JoinExpr as { isNatural?: boolean; usingClause?: never[] };
        if (join.isNatural) return 'all';
        for (const u of join.usingClause ?? []) {
          const name = stringValue(u);
          if (name) names.add(name);
        }
      }
      if ('ColumnRef' in node) {
        const fields = (node.ColumnRef as { fields?: never[] }).fields ?? [];
        if (fields.some((f) => 'A_Star' in f)) return 'all';
        const last = stringValue(fields.at(-1));
        if (last) names.add(last);
      }
    }
  }
  // A bare alias or relation name as a column is the whole row (`count(t)`, `row_to_json(t)`).
  for (const name of names) if (rowNames.has(name)) return 'all';
  return names;
}
