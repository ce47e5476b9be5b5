// The pgtrickle command line: wiring only, each command lives in cli/<command>.ts.
// Exit codes: 0 done, 1 the job failed, 2 the command line was wrong.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { runAlter } from './cli/alter.js';
import { runCreate } from './cli/create.js';
import { runDrop } from './cli/drop.js';
import { EXIT, errorLine } from './cli/errors.js';
import { runEvents } from './cli/events.js';
import { runExplain } from './cli/explain.js';
import { runMigrate } from './cli/migrate.js';
import { NATS_URL_HELP } from './cli/nats.js';
import { runNode } from './cli/node.js';
import { runRefresh } from './cli/refresh.js';
import { runStatus } from './cli/status.js';
import { runTop } from './cli/top.js';

const DATABASE_URL_HELP = 'PostgreSQL connection URL (default: $PGTRICKLE_DATABASE_URL)';
const JSON_HELP = 'print JSON for programs instead of text';

function oneOf(...allowed: string[]) {
  return (value: string): string => {
    const v = value.trim().toUpperCase();
    if (!allowed.includes(v)) throw new InvalidArgumentError(`Allowed values are ${allowed.join(', ')}.`);
    return v;
  };
}

function positive(unit: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n <= 0)
      throw new InvalidArgumentError(`Expected a positive number of ${unit}.`);
    return n;
  };
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0 || n > 65_535)
    throw new InvalidArgumentError('Expected a TCP port from 0 (any free port) to 65535.');
  return n;
}

function replicas(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1 || n > 5)
    throw new InvalidArgumentError('Expected 1 to 5 replicas, as NATS JetStream allows.');
  return n;
}

/** Options every command that talks to PostgreSQL has. */
function withDatabase(cmd: Command): Command {
  return cmd.option('--database-url <url>', DATABASE_URL_HELP).option('--json', JSON_HELP);
}

const modeOption = () =>
  new Option('--mode <mode>', 'refresh mode: AUTO, FULL or DIFFERENTIAL').argParser(
    oneOf('AUTO', 'FULL', 'DIFFERENTIAL'),
  );

export function program(): Command {
  const cli = new Command('pgtrickle')
    .description('Stream tables for any PostgreSQL, kept fresh by a cluster of refresh nodes')
    .version(process.env.npm_package_version ?? '0.1.0')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');

  withDatabase(
    cli.command('migrate').description('install or upgrade the pgtrickle schema in a database'),
  ).action(runMigrate);

  cli
    .command('node')
    .description('run a refresh node: joins the cluster and keeps stream tables fresh until SIGTERM')
    .option('--database-url <url>', DATABASE_URL_HELP)
    .option('--nats-url <urls>', NATS_URL_HELP)
    .option('--node-id <id>', 'name of this node in the cluster (default: host-pid-random)')
    .option(
      '--lease-ttl <ms>',
      'a lease not renewed for this long moves to another node (default: 10000)',
      positive('ms'),
    )
    .option('--tick <ms>', 'scheduler tick (default: 100)', positive('ms'))
    .option('--pool-size <n>', 'database connections for refreshes (default: 8)', positive('connections'))
    .option(
      '--kv-replicas <n>',
      'replicas of the NATS KV bucket when this node creates it, 1-5 (default: $PGTRICKLE_KV_REPLICAS or 1)',
      replicas,
    )
    .option('--no-migrate', 'do not apply pending migrations on start: wait for `pgtrickle migrate` instead')
    .addOption(
      new Option(
        '--connection-pooler-mode <mode>',
        "'transaction' behind PgBouncer in transaction mode: no LISTEN, no session state",
      )
        .env('PGTRICKLE_CONNECTION_POOLER_MODE')
        .choices(['session', 'transaction'])
        .default('session'),
    )
    .addOption(
      new Option('--metrics-port <port>', 'port of /metrics, /healthz and /readyz; 0 picks a free one')
        .env('PGTRICKLE_METRICS_PORT')
        .default(9187)
        .argParser(port),
    )
    .addOption(
      new Option('--metrics-host <address>', 'address the metrics endpoint binds to')
        .env('PGTRICKLE_METRICS_HOST')
        .default('0.0.0.0'),
    )
    .action(runNode);

  withDatabase(
    cli
      .command('create')
      .description('create a stream table and fill it')
      .argument('<name>', 'stream table name, optionally schema-qualified')
      .requiredOption('--query <sql>', 'the defining SELECT')
      .option('--schedule <schedule>', "'30s', '5m', a cron expression, or 'calculated' (default: 1m)")
      .addOption(modeOption().default(undefined, 'AUTO')),
  ).action(runCreate);

  withDatabase(
    cli
      .command('alter')
      .description('change the query, schedule, mode or status of a stream table')
      .argument('<name>', 'stream table name')
      .option('--query <sql>', 'a new defining SELECT; the table is refilled')
      .option('--schedule <schedule>', 'a new schedule')
      .addOption(modeOption())
      .addOption(
        new Option('--status <status>', 'ACTIVE or SUSPENDED').argParser(oneOf('ACTIVE', 'SUSPENDED')),
      ),
  ).action((name: string, opts, cmd: Command) => {
    if ([opts.query, opts.schedule, opts.mode, opts.status].every((v) => v === undefined)) {
      cmd.error('error: alter needs at least one of --query, --schedule, --mode, --status', {
        exitCode: EXIT.usage,
        code: 'pgtrickle.nothingToAlter',
      });
    }
    return runAlter(name, opts);
  });

  withDatabase(
    cli
      .command('drop')
      .description('drop a stream table')
      .argument('<name>', 'stream table name')
      .option('--cascade', 'also drop the stream tables that read it'),
  ).action(runDrop);

  withDatabase(
    cli
      .command('refresh')
      .description('refresh a stream table now and print what the refresh did')
      .argument('<name>', 'stream table name')
      .option(
        '--wait',
        'if a node is refreshing it, wait for that refresh (NATS event) and ask again, until it is up to date',
      )
      .option('--timeout <seconds>', 'give up waiting after this long (default: 60)', positive('seconds'))
      .option('--nats-url <urls>', NATS_URL_HELP),
  ).action((name: string, opts) => runRefresh(name, opts, (opts.timeout ?? 60) * 1000));

  withDatabase(
    cli
      .command('status')
      .description('one line per stream table: status, mode, schedule, staleness, last refresh'),
  ).action(runStatus);

  withDatabase(
    cli
      .command('explain')
      .description('the statement a differential refresh runs (pgtrickle.explain_st)')
      .argument('<name>', 'stream table name')
      .option('--analyze', 'run it in a rolled-back subtransaction and print EXPLAIN ANALYZE as JSON'),
  ).action(runExplain);

  withDatabase(
    cli
      .command('events')
      .description('print refreshed, failed and status events from NATS as they happen, one per line')
      .argument('[name]', 'only this stream table (default: all of the database)')
      .option('--nats-url <urls>', NATS_URL_HELP)
      .option('--count <n>', 'exit after this many events', positive('events')),
  ).action((name: string | undefined, opts) => runEvents(name, opts, opts.count));

  withDatabase(
    cli
      .command('top')
      .description('full-screen view of stream tables and nodes, updated on every refresh (keys: ? for help)')
      .option('--nats-url <urls>', NATS_URL_HELP)
      .option(
        '--interval <ms>',
        'poll the catalog this often besides NATS events (default: 2000)',
        positive('ms'),
      ),
  ).action((opts, cmd: Command) => {
    if (!opts.json && !(process.stdout.isTTY && process.stdin.isTTY)) {
      cmd.error('error: top needs a terminal; use --json for a snapshot', {
        exitCode: EXIT.usage,
        code: 'pgtrickle.notATerminal',
      });
    }
    return runTop(opts, opts.interval ?? 2_000);
  });
  return cli;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version'
        ? EXIT.ok
        : EXIT.usage;
    }
    process.stderr.write(`${errorLine(err)}\n`);
    return EXIT.failed;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv);
}
