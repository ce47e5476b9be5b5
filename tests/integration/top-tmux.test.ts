// `pgtrickle top` driven as a person would: in a detached tmux session of fixed size, against
// real PostgreSQL, NATS and a refresh node; keys are typed with send-keys and the assertions
// read the pane as captured text.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RefreshNode } from '../../cluster/node/index.js';
import { createLogger } from '../../shared/logger.js';
import { migratedDatabase, type TestDb } from '../support/db.js';

const run = promisify(execFile);
const natsUrl = inject('natsUrl');
const TMUX = '/usr/bin/tmux';
// A socket of its own: the test never touches a tmux server someone else runs.
const socket = `pgt-top-${randomBytes(4).toString('hex')}`;
const BARS = /[▁▂▃▄▅▆▇█]+/u;
const exitFile = join(tmpdir(), `${socket}.exit`);

async function tmux(...args: string[]): Promise<string> {
  const { stdout } = await run(TMUX, ['-u', '-L', socket, ...args], {
    env: { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' },
  });
  return stdout;
}

const screen = (session = 'top') => tmux('capture-pane', '-p', '-t', session);
const press = (...keys: string[]) => tmux('send-keys', '-t', 'top', ...keys);

/** The pgtrickle CLI as a shell command line, each argument quoted for sh. */
function cli(...args: string[]): string {
  return [process.execPath, '--import', 'tsx', 'cluster/cli.ts', ...args]
    .map((a) => `'${a.replaceAll("'", "'\\''")}'`)
    .join(' ');
}

/** The row of one stream table as shown, or undefined while it is not on screen. */
function rowOf(text: string, name: string): string | undefined {
  return text.split('\n').find((l) => l.includes(` ${name} `));
}

/**
 * The command, then its exit status, then a pause: a pane whose program ended keeps its text for
 * capture only while the shell around it lives.
 */
function andExit(command: string): string {
  return `${command}; echo "exit $?"; sleep 60`;
}

/** Waits until the screen satisfies `test`, and returns that screen. */
async function until(test: (text: string) => boolean, timeout = 15_000, session = 'top'): Promise<string> {
  let last = '';
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    last = await screen(session);
    if (test(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the screen never showed what was expected; last screen:\n${last}`);
}

const hasTmux = await run(TMUX, ['-V']).then(
  () => true,
  () => false,
);

describe.skipIf(!natsUrl || !hasTmux)('pgtrickle top in a terminal', () => {
  let db: TestDb;
  let node: RefreshNode | undefined;

  beforeAll(async () => {
    db = await migratedDatabase();
    await db.admin.query(`
      CREATE TABLE readings (id int PRIMARY KEY, sensor text, v int);
      INSERT INTO readings SELECT g, 's' || (g % 4), g FROM generate_series(1, 200) g;
      SELECT pgtrickle.create_stream_table('per_sensor',
        'SELECT sensor, sum(v) AS total, count(*) AS n FROM readings GROUP BY sensor', '200ms');
      SELECT pgtrickle.create_stream_table('big_readings', 'SELECT id, v FROM readings WHERE v > 150', '1h');`);
    node = new RefreshNode({
      databaseUrl: db.url,
      natsUrls: [natsUrl],
      logger: createLogger({ level: process.env.PGT_TEST_LOG ?? 'warn' }),
      nodeId: 'tui-node',
      leaseTtlMs: 1_500,
      tickMs: 50,
    });
    await node.start();
    // The shell writes top's exit code to a file: tmux 3.3 does not always fill in
    // #{pane_dead_status} once the pane is dead.
    const command = `${cli('top', '--database-url', db.url, '--nats-url', natsUrl, '--interval', '500')}; echo $? > '${exitFile}'`;
    await tmux('new-session', '-d', '-s', 'top', '-x', '150', '-y', '24', '-c', process.cwd(), command);
    // The pane stays after the program exits, so its last screen (or error) can be read.
    await tmux('set-option', '-t', 'top', 'remain-on-exit', 'on');
  });

  afterAll(async () => {
    await tmux('kill-server').catch(() => undefined);
    await rm(exitFile, { force: true });
    await node?.stop();
    await db?.drop();
  });

  it('shows one row per stream table with status, mode, schedule, node and a latency sparkline', async () => {
    // The node takes the lease before its first refresh is in the history, and top may read the
    // database before its NATS connection is up (seen under load): wait for all three.
    const text = await until((t) => {
      const row = rowOf(t, 'public.big_readings') ?? '';
      return /NODE/.test(t) && row.includes('tui-node') && BARS.test(row) && /NATS connected/.test(t);
    });
    expect(text.split('\n')[0]).toMatch(
      /^pgtrickle top · \S+ · 2 stream tables · 1 nodes alive · NATS connected/,
    );
    expect(text).toMatch(/^ {2}NAME +STATUS +MODE +SCHEDULE +STALENESS +LAST +LATENCY +ERR +NODE/m);
    expect(rowOf(text, 'public.big_readings')).toMatch(
      /public\.big_readings +ACTIVE +AUTO\S* +1h +\S+ +\S+ +[▁▂▃▄▅▆▇█]+ +0 +tui-node/u,
    );
    expect(rowOf(text, 'public.per_sensor')).toMatch(/ACTIVE +AUTO\S* +200ms /);
  });

  it('draws a longer, different sparkline after the node refreshed the changes', async () => {
    const before = await until((t) => BARS.test(rowOf(t, 'public.per_sensor') ?? ''));
    const sparkBefore = BARS.exec(rowOf(before, 'public.per_sensor') ?? '')?.[0] ?? '';
    for (let i = 0; i < 4; i++) {
      await db.admin.query('UPDATE readings SET v = v + 1 WHERE id <= $1', [50 * (i + 1)]);
      await new Promise((r) => setTimeout(r, 400));
    }
    const after = await until((t) => {
      const spark = BARS.exec(rowOf(t, 'public.per_sensor') ?? '')?.[0] ?? '';
      return [...spark].length >= [...sparkBefore].length + 2;
    });
    const sparkAfter = BARS.exec(rowOf(after, 'public.per_sensor') ?? '')?.[0] ?? '';
    expect(sparkAfter).not.toBe(sparkBefore);
    const { rows } = await db.admin.query(
      `SELECT count(*)::int AS n FROM pgtrickle.pgt_refresh_history h
         JOIN pgtrickle.pgt_stream_tables USING (pgt_id) WHERE pgt_name = 'per_sensor' AND h.status = 'COMPLETED'`,
    );
    // One bar per completed refresh, up to the last 20.
    expect([...sparkAfter].length).toBe(Math.min(20, rows[0].n));
  });

  it('refreshes the selected stream table with r and reports the outcome', async () => {
    await db.admin.query('INSERT INTO readings VALUES (1001, $1, 500)', ['s9']);
    const before = BARS.exec(rowOf(await screen(), 'public.big_readings') ?? '')?.[0] ?? '';
    // The rows are sorted by name: big_readings is first and selected.
    await press('r');
    const text = await until((t) => /refreshed public\.big_readings: \w+, \d+ rows? inserted/.test(t));
    expect(rowOf(text, 'public.big_readings')).toMatch(/^>/);
    const after = await until(
      (t) => [...(BARS.exec(rowOf(t, 'public.big_readings') ?? '')?.[0] ?? '')].length > [...before].length,
    );
    expect(after).toContain('public.big_readings');
  });

  it('filters by name with / and clears the filter with Esc', async () => {
    await press('/', 's', 'e', 'n', 's');
    await until((t) => t.includes('/sens▏'));
    await press('Enter');
    const filtered = await until((t) => t.includes('filter: sens'));
    expect(rowOf(filtered, 'public.per_sensor')).toBeDefined();
    expect(rowOf(filtered, 'public.big_readings')).toBeUndefined();
    await press('Escape');
    const cleared = await until(
      (t) => !t.includes('filter: sens') && rowOf(t, 'public.big_readings') !== undefined,
    );
    expect(rowOf(cleared, 'public.per_sensor')).toBeDefined();
  });

  it('shows the help with ? and closes it with any key', async () => {
    await press('?');
    const help = await until((t) => t.includes('r              refresh the selected stream table now'));
    expect(help).toContain('n              switch between stream tables and nodes');
    expect(rowOf(help, 'public.per_sensor')).toBeUndefined();
    await press('x');
    await until((t) => rowOf(t, 'public.per_sensor') !== undefined);
  });

  it('switches to the nodes view with n: members and the leases they hold', async () => {
    await press('n');
    const text = await until((t) => /^ {2}NODE +STATE +STREAM TABLES/m.test(t));
    expect(text).toMatch(/^ {2}tui-node +alive +2 +0 +\S+ +\d+ +\S+/m);
    expect(text).toMatch(/^ {2}public\.big_readings +tui-node +\d+ +in \S+/m);
    expect(text).toMatch(/^ {2}public\.per_sensor +tui-node +\d+ +in \S+/m);
    await press('n');
    await until((t) => rowOf(t, 'public.per_sensor') !== undefined);
  });

  it('quits with q and leaves the terminal as it found it', async () => {
    await press('q');
    await expect.poll(() => readFile(exitFile, 'utf8').catch(() => ''), { timeout: 10_000 }).toBe('0\n');
    await expect
      .poll(async () => (await tmux('display-message', '-p', '-t', 'top', '#{pane_dead}')).trim(), {
        timeout: 10_000,
      })
      .toBe('1');
    // The alternate screen is gone: none of top's rows are left on the terminal.
    expect(rowOf(await screen(), 'public.per_sensor')).toBeUndefined();
  });
});

describe.skipIf(!hasTmux)('progress of long commands in a terminal', () => {
  let db: TestDb;

  beforeAll(async () => {
    db = await migratedDatabase();
  });

  afterAll(async () => {
    await tmux('kill-server').catch(() => undefined);
    await db?.drop();
  });

  // About two seconds of initial population: long enough to be seen on the terminal.
  const slow = 'SELECT g AS id, pg_sleep(0.002) IS NULL AS slept FROM generate_series(1, 1000) g';

  it('shows a spinner with the elapsed time while create populates, then the result', async () => {
    const command = cli('create', 'slow_st', '--query', slow, '--mode', 'FULL', '--database-url', db.url);
    await tmux(
      'new-session',
      '-d',
      '-s',
      'create',
      '-x',
      '120',
      '-y',
      '10',
      '-c',
      process.cwd(),
      andExit(command),
    );
    const during = await until((t) => /creating slow_st: populating \d+\.\ds/.test(t), 20_000, 'create');
    expect(during).toMatch(/^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] creating slow_st: populating \d+\.\ds/m);
    const after = await until((t) => t.includes('exit 0'), 30_000, 'create');
    // The spinner line is erased: only the result is left.
    expect(after.trim()).toMatch(
      /^created stream table public\.slow_st \(schedule 1m, mode FULL\): 1000 rows in \d+ ms\nexit 0$/,
    );
  });

  it('stays quiet with --json on the same terminal: one JSON document and nothing else', async () => {
    const command = cli(
      'create',
      'slow_json',
      '--query',
      slow,
      '--mode',
      'FULL',
      '--json',
      '--database-url',
      db.url,
    );
    await tmux(
      'new-session',
      '-d',
      '-s',
      'json',
      '-x',
      '200',
      '-y',
      '10',
      '-c',
      process.cwd(),
      andExit(command),
    );
    const seen: string[] = [];
    const done = await until(
      (t) => {
        seen.push(t);
        return t.includes('exit 0');
      },
      30_000,
      'json',
    );
    expect(seen.some((t) => /populating/.test(t))).toBe(false);
    expect(JSON.parse(done.trim().replace(/\nexit 0$/, ''))).toMatchObject({
      name: 'public.slow_json',
      rows_inserted: 1000,
    });
  });
});
