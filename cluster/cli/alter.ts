// `pgtrickle alter NAME`: pgtrickle.alter_stream_table with only the options given.

import { openSession, resolve } from './db.js';
import { about } from './errors.js';
import { output, progress } from './output.js';

export interface AlterFlags {
  databaseUrl?: string;
  query?: string;
  schedule?: string;
  mode?: string;
  status?: string;
  json?: boolean;
}

export async function runAlter(name: string, opts: AlterFlags): Promise<void> {
  const out = output(opts.json ?? false);
  const session = await openSession(opts.databaseUrl, 'alter');
  // A new query refills the table, as long as a create's initial population.
  const spinner = progress(`altering ${name}`, out.json || opts.query === undefined);
  try {
    const params: unknown[] = [name];
    const args = ['$1'];
    const changed: Record<string, string> = {};
    for (const [flag, arg] of [
      ['query', 'query'],
      ['schedule', 'schedule'],
      ['mode', 'refresh_mode'],
      ['status', 'status'],
    ] as const) {
      const value = opts[flag];
      if (value === undefined) continue;
      args.push(`${arg} => $${params.push(value)}`);
      changed[arg] = value;
    }
    const ref = await about(`alter ${name}`, async () => {
      await session.client.query(`SELECT pgtrickle.alter_stream_table(${args.join(', ')})`, params);
      return resolve(session.client, name);
    });
    spinner.stop();
    const notices = session.takeNotices();
    for (const n of notices) out.note(`${n.severity.toLowerCase()}: ${n.message}`);
    out.line(
      `altered stream table ${ref.qualified}: ${Object.entries(changed)
        .map(([k, v]) => (k === 'query' ? 'query' : `${k} ${v}`))
        .join(', ')}`,
    );
    out.result({ name: ref.qualified, changed, notices: notices.map((n) => n.message) });
  } finally {
    spinner.stop();
    await session.end();
  }
}
