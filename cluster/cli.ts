// The pgtrickle command line. Exit codes: 0 done, 1 the job failed, 2 the command was wrong.
import { Command, CommanderError } from 'commander';
import pg from 'pg';
import { databaseUrl } from '../shared/config.js';
import { PgTrickleError } from '../shared/errors/index.js';
import { migrate } from '../sql/migrate.js';

interface Output {
  json: boolean;
  line(text: string): void;
  result(value: unknown): void;
}

function output(json: boolean): Output {
  return {
    json,
    line: (text) => {
      if (!json) process.stdout.write(`${text}\n`);
    },
    result: (value) => {
      if (json) process.stdout.write(`${JSON.stringify(value)}\n`);
    },
  };
}

async function runMigrate(opts: { databaseUrl?: string; json?: boolean }): Promise<void> {
  const out = output(opts.json ?? false);
  const client = new pg.Client({
    connectionString: databaseUrl(opts.databaseUrl),
    application_name: 'pgtrickle migrate',
  });
  await client.connect();
  try {
    const result = await migrate(client, {
      onApplied: (m) => out.line(`applied migration ${String(m.version).padStart(4, '0')} ${m.description}`),
    });
    out.line(
      result.applied.length === 0
        ? `pgtrickle catalog is up to date at version ${result.version}`
        : `pgtrickle catalog is now at version ${result.version}`,
    );
    out.result({ version: result.version, applied: result.applied.map((m) => m.version) });
  } finally {
    await client.end();
  }
}

export function program(): Command {
  const cli = new Command('pgtrickle')
    .description('Stream tables for any PostgreSQL, kept fresh by a cluster of refresh nodes')
    .version(process.env.npm_package_version ?? '0.1.0')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');
  cli
    .command('migrate')
    .description('install or upgrade the pgtrickle schema in a database')
    .option('--database-url <url>', 'PostgreSQL connection URL (default: $PGTRICKLE_DATABASE_URL)')
    .option('--json', 'print one JSON object instead of text')
    .action(runMigrate);
  return cli;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : 2;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`pgtrickle: error: ${message}\n`);
    if (err instanceof PgTrickleError && err.hint) process.stderr.write(`hint: ${err.hint}\n`);
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv);
}
