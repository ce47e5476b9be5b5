// PgBouncer for tests: a throwaway pgbouncer process on a loopback port in front of a test
// PostgreSQL server, run as the `postgres` OS user when the tests run as root (it refuses root).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort } from './ports.js';
import type { PgServer } from './postgres.js';
import { isRoot, killNow, removeNow, track } from './processes.js';

export interface PgBouncer {
  host: string;
  port: number;
  /** URL of `db` through the pooler */
  url(db: string): string;
  /** URL of PgBouncer's admin console (SHOW POOLS, SHOW STATS, …) */
  adminUrl: string;
  stop(): Promise<void>;
}

export interface StartPgBouncerOptions {
  server: PgServer;
  poolMode: 'session' | 'transaction' | 'statement';
  /** server connections per database and user */
  poolSize?: number;
}

export class PgBouncerNotFound extends Error {
  readonly code = 'PGBOUNCER_NOT_FOUND';
}

const CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'];
const READY_TIMEOUT_MS = 10_000;
const START_ATTEMPTS = 3;
const LOG_TAIL_CHARS = 4_000;

export function pgbouncerBinary(): string | undefined {
  const found = CANDIDATES.find((p) => existsSync(p));
  if (found) return found;
  try {
    return execFileSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

function postgresIds(): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

export async function startPgBouncer(opts: StartPgBouncerOptions): Promise<PgBouncer> {
  const binary = pgbouncerBinary();
  if (binary === undefined) {
    throw new PgBouncerNotFound(
      'pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it)',
    );
  }
  const ids = postgresIds();
  const root = await mkdtemp(join(tmpdir(), 'pgt-bouncer-'));
  let proc: ChildProcess | undefined;
  let output = '';
  const stop = track({
    name: `pgbouncer ${root}`,
    stop: async () => {
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((resolve) => proc?.once('exit', resolve));
        // SIGINT is PgBouncer's safe shutdown: it waits for clients' transactions, then exits.
        proc.kill('SIGINT');
        const timer = setTimeout(() => killNow(proc), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(root, { recursive: true, force: true });
    },
    abort: () => {
      killNow(proc);
      removeNow(root);
    },
  });
  try {
    // PgBouncer with auth_type trust still wants the user listed in its auth_file.
    await writeFile(join(root, 'userlist.txt'), `"${opts.server.user}" ""\n`);
    if (ids) {
      await chown(root, ids.uid, ids.gid);
      await chown(join(root, 'userlist.txt'), ids.uid, ids.gid);
    }
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const ini = join(root, 'pgbouncer.ini');
      await writeFile(
        ini,
        [
          '[databases]',
          `* = host=${opts.server.host} port=${opts.server.port} user=${opts.server.user}`,
          '[pgbouncer]',
          'listen_addr = 127.0.0.1',
          `listen_port = ${port}`,
          'unix_socket_dir =',
          'auth_type = trust',
          `auth_file = ${join(root, 'userlist.txt')}`,
          `admin_users = ${opts.server.user}`,
          `pool_mode = ${opts.poolMode}`,
          `default_pool_size = ${opts.poolSize ?? 10}`,
          'max_client_conn = 200',
          // JDBC and some drivers send it; node-postgres does not, but a pooler must not refuse it.
          'ignore_startup_parameters = extra_float_digits',
          `logfile = ${join(root, 'pgbouncer.log')}`,
          '',
        ].join('\n'),
      );
      if (ids) await chown(ini, ids.uid, ids.gid);
      output = '';
      const child = spawn(binary, [ini], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(ids ?? {}),
      });
      proc = child;
      const keep = (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-LOG_TAIL_CHARS);
      };
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      const ready = await untilListening(child, port);
      if (ready) {
        const adminUrl = `postgres://${opts.server.user}@127.0.0.1:${port}/pgbouncer`;
        return {
          host: '127.0.0.1',
          port,
          url: (db) => `postgres://${opts.server.user}@127.0.0.1:${port}/${encodeURIComponent(db)}`,
          adminUrl,
          stop,
        };
      }
      killNow(child);
      const log = (await readFile(join(root, 'pgbouncer.log'), 'utf8').catch(() => '')).slice(
        -LOG_TAIL_CHARS,
      );
      if (attempt < START_ATTEMPTS && /address already in use/i.test(output + log)) continue;
      throw new Error(`pgbouncer did not start on port ${port}:\n${output}\n${log}`);
    }
  } catch (err) {
    await stop();
    throw err;
  }
}

/** True once the port accepts connections; false when the process exited or time ran out. */
async function untilListening(child: ChildProcess, port: number): Promise<boolean> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    if (await accepts(port)) return true;
    await sleep(50);
  }
  return false;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Rows of an admin console command (SHOW POOLS, SHOW STATS, SHOW CONFIG …). */
export async function pgbouncerShow(bouncer: PgBouncer, what: string): Promise<Record<string, unknown>[]> {
  // The console speaks the simple query protocol only, which a query without parameters uses.
  const client = new pg.Client({ connectionString: bouncer.adminUrl });
  await client.connect();
  try {
    return (await client.query(`SHOW ${what}`)).rows;
  } finally {
    await client.end();
  }
}
