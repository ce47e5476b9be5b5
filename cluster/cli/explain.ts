// `pgtrickle explain NAME [--analyze]`: pgtrickle.explain_st, the statement a differential
// refresh runs, or its EXPLAIN ANALYZE (run in a subtransaction that is rolled back).

import { openSession, resolve } from './db.js';
import { about } from './errors.js';
import { output } from './output.js';

export interface ExplainFlags {
  databaseUrl?: string;
  analyze?: boolean;
  json?: boolean;
}

export async function runExplain(name: string, opts: ExplainFlags): Promise<void> {
  const out = output(opts.json ?? false);
  const session = await openSession(opts.databaseUrl, 'explain');
  try {
    const { ref, text } = await about(`explain ${name}`, async () => {
      const found = await resolve(session.client, name);
      const { rows } = await session.client.query<{ plan: string }>(
        'SELECT pgtrickle.explain_st($1, $2) AS plan',
        [found.qualified, opts.analyze ?? false],
      );
      return { ref: found, text: rows[0]?.plan ?? '' };
    });
    const notices = session.takeNotices();
    for (const n of notices) out.note(`${n.severity.toLowerCase()}: ${n.message}`);
    out.line(opts.analyze ? JSON.stringify(JSON.parse(text), null, 2) : text);
    out.result({
      name: ref.qualified,
      analyze: opts.analyze ?? false,
      plan: opts.analyze ? JSON.parse(text) : text,
      notices: notices.map((n) => n.message),
    });
  } finally {
    await session.end();
  }
}
