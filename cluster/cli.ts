// The pgtrickle command line. Exit codes: 0 done, 1 the job failed, 2 the command was wrong.
import { Command, CommanderError } from 'commander';
import pg from 'pg';
import { databaseUrl } from '../shared/config.js';
import { PgTrickleError } from '../shared/errors/index.js';
import { createLogger } from '../shared/logger.js';
import { migrate } from '../sql/migrate.js';
import { RefreshNode } from './node/index.js';
import { connectionPoolerMode } from './node/pooler.js';

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

interface NodeFlags {
  databaseUrl?: string;
  natsUrl?: string;
  nodeId?: string;
  leaseTtl?: string;
  tick?: string;
  poolSize?: string;
  connectionPoolerMode?: string;
}

function positiveInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new PgTrickleError('CONFIG_INVALID', `${flag} must be a positive integer, got ${value}`);
  }
  return n;
}

// Runs until SIGTERM or SIGINT, then hands its stream tables over before it exits.
async function runNode(opts: NodeFlags): Promise<void> {
  const natsUrls = (
    opts.natsUrl ??
    process.env.PGTRICKLE_NATS_URL ??
    process.env.NATS_URL ??
    'nats://127.0.0.1:4222'
  )
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  const node = new RefreshNode({
    databaseUrl: databaseUrl(opts.databaseUrl),
    natsUrls,
    logger: createLogger(),
    nodeId: opts.nodeId,
    leaseTtlMs: positiveInt('--lease-ttl', opts.leaseTtl),
    tickMs: positiveInt('--tick', opts.tick),
    poolSize: positiveInt('--pool-size', opts.poolSize),
    connectionPoolerMode: connectionPoolerMode(opts.connectionPoolerMode),
  });
  const stopped = new Promise<void>((resolve) => {
    const onSignal = () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      void node.stop().finally(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  try {
    await node.start();
  } catch (err) {
    await node.stop().catch(() => undefined);
    throw err;
  }
  await stopped;
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
  cli
    .command('node')
    .description('run a refresh node: joins the cluster and keeps stream tables fresh until SIGTERM')
    .option('--database-url <url>', 'PostgreSQL connection URL (default: $PGTRICKLE_DATABASE_URL)')
    .option(
      '--nats-url <urls>',
      'NATS server URLs, comma-separated (default: $PGTRICKLE_NATS_URL, $NATS_URL)',
    )
    .option('--node-id <id>', 'name of this node in the cluster (default: host-pid-random)')
    .option('--lease-ttl <ms>', 'a lease not renewed for this long moves to another node (default: 10000)')
    .option('--tick <ms>', 'scheduler tick (default: 100)')
    .option('--pool-size <n>', 'database connections for refreshes (default: 8)')
    .option(
      '--connection-pooler-mode <mode>',
      'session (default) or transaction: behind PgBouncer in transaction mode no LISTEN, no session state (default: $PGTRICKLE_CONNECTION_POOLER_MODE)',
    )
    .action(runNode);
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
