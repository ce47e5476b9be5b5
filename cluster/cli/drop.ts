// `pgtrickle drop NAME [--cascade]`: pgtrickle.drop_stream_table; with --cascade each dependent
// dropped too arrives as a NOTICE and is reported.

import { openSession, resolve } from './db.js';
import { about } from './errors.js';
import { output } from './output.js';

export interface DropFlags {
  databaseUrl?: string;
  cascade?: boolean;
  json?: boolean;
}

export async function runDrop(name: string, opts: DropFlags): Promise<void> {
  const out = output(opts.json ?? false);
  const session = await openSession(opts.databaseUrl, 'drop');
  try {
    const ref = await about(`drop ${name}`, async () => {
      const found = await resolve(session.client, name);
      await session.client.query('SELECT pgtrickle.drop_stream_table($1, $2)', [name, opts.cascade ?? false]);
      return found;
    });
    const notices = session.takeNotices();
    for (const n of notices) out.note(`${n.severity.toLowerCase()}: ${n.message}`);
    out.line(`dropped stream table ${ref.qualified}`);
    out.result({ name: ref.qualified, dropped: true, notices: notices.map((n) => n.message) });
  } finally {
    await session.end();
  }
}
