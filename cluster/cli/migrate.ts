// `pgtrickle migrate`: installs or upgrades the pgtrickle schema.
import { migrate } from '../../sql/migrate.js';
import { openSession } from './db.js';
import { output, progress } from './output.js';

export interface MigrateFlags {
  databaseUrl?: string;
  json?: boolean;
}

export async function runMigrate(opts: MigrateFlags): Promise<void> {
  const out = output(opts.json ?? false);
  const session = await openSession(opts.databaseUrl, 'migrate');
  const spinner = progress('migrating', out.json);
  try {
    const result = await migrate(session.client, {
      onApplied: (m) => {
        spinner.stop();
        out.line(`applied migration ${String(m.version).padStart(4, '0')} ${m.description}`);
        spinner.update('migrating');
      },
    });
    spinner.stop();
    out.line(
      result.applied.length === 0
        ? `pgtrickle catalog is up to date at version ${result.version}`
        : `pgtrickle catalog is now at version ${result.version}`,
    );
    out.result({ version: result.version, applied: result.applied.map((m) => m.version) });
  } finally {
    spinner.stop();
    await session.end();
  }
}
