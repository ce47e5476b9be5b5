// Hand-made catalog facts and helpers for compiler unit tests, which run without a database.
import { UnsupportedConstruct } from '../../sql/compiler/errors.js';
import type { CompileFacts, RelationFacts } from '../../sql/compiler/facts.js';
import { compileLoaded, type Plan } from '../../sql/compiler/plan.js';

export function table(
  relid: number,
  name: string,
  columns: [string, string][],
  key?: string[],
): RelationFacts {
  return {
    relid,
    schema: 'public',
    name,
    kind: 'table',
    buffer: `changes_${relid}`,
    columns: columns.map(([n, type], i) => ({ name: n, attnum: i + 1, type, captured: true })),
    ...(key ? { key } : {}),
  };
}

export function compile(facts: CompileFacts): Plan {
  return compileLoaded(facts, { schema: 'public', name: 'st' });
}

/** The construct an UnsupportedConstruct names, or undefined when the query compiles. */
export function refusal(facts: CompileFacts): string | undefined {
  try {
    compile(facts);
  } catch (err) {
    if (err instanceof UnsupportedConstruct) return err.construct;
    throw err;
  }
  return undefined;
}
