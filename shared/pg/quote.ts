// The one place TypeScript turns names and values into SQL text; everything else passes
// values as query parameters.

/** Quotes an identifier the way PostgreSQL's quote_ident() does, always (never bare). */
export function ident(name: string): string {
  if (name.length === 0) throw new RangeError('an SQL identifier cannot be empty');
  if (name.includes('\0')) throw new RangeError('an SQL identifier cannot contain a NUL character');
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quotes a schema-qualified name: qualified('public', 'orders') → "public"."orders". */
export function qualified(schema: string, name: string): string {
  return `${ident(schema)}.${ident(name)}`;
}

/** Quotes a string literal the way quote_literal() does, with E'' when backslashes occur. */
export function literal(value: string): string {
  if (value.includes('\0')) throw new RangeError('an SQL literal cannot contain a NUL character');
  const body = value.replaceAll("'", "''");
  return value.includes('\\') ? `E'${body.replaceAll('\\', '\\\\')}'` : `'${body}'`;
}
