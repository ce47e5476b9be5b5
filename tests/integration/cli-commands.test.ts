// The pgtrickle CLI end to end against real PostgreSQL and NATS: every command, its --json
// output, and bad input answered by one line on stderr with a trustworthy exit code.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { program } from '../../cluster/cli.js';
import { RefreshNode } from '../../cluster/node/index.js';
import { createLogger } from '../../shared/logger.js';
import { freshDatabase } from '../harness/index.js';
import { divergence, makeDifferential, migratedDatabase, type TestDb } from '../support/db.js';

const run = promisify(execFile);
const natsUrl = inject('natsUrl');
const CLI = ['--import', 'tsx', 'cluster/cli.ts'];
// Roles are cluster-wide, so their names are unique per run.
const stranger = `pgt_cli_stranger_${randomBytes(4).toString('hex')}`;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function pgtrickle(args: string[], env: Record<string, string> = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...CLI, ...args], {
      env: { ...process.env, PGTRICKLE_DATABASE_URL: '', DATABASE_URL: '', PGTRICKLE_NATS_URL: '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A failed command: its exit code and its one line on stderr. */
function failure(result: Result): { code: number; lines: string[] } {
  return { code: result.code, lines: result.stderr.trimEnd().split('\n') };
}

function asRole(url: string, role: string): string {
  const u = new URL(url);
  u.username = role;
  u.password = '';
  return u.toString();
}

describe('pgtrickle CLI commands', () => {
  let db: TestDb;
  let url: string;
  const cli = (...args: string[]) => pgtrickle([...args, '--database-url', url]);

  beforeAll(async () => {
    db = await migratedDatabase();
    url = db.url;
    await db.admin.query(`
      CREATE TABLE orders (id int PRIMARY KEY, region text NOT NULL, amount numeric NOT NULL);
      INSERT INTO orders SELECT g, (ARRAY['north', 'south', 'east'])[1 + g % 3], g FROM generate_series(1, 30) g;
      CREATE ROLE ${stranger} LOGIN;
      GRANT USAGE ON SCHEMA public TO ${stranger};`);
  });
  afterAll(async () => {
    await db?.admin.query(`DROP OWNED BY ${stranger}; DROP ROLE ${stranger}`).catch(() => undefined);
    await db?.drop();
  });

  describe('create', () => {
    it('creates and fills a stream table, reporting what it populated', async () => {
      const result = await cli(
        'create',
        'sales',
        '--query',
        'SELECT region, sum(amount) AS total, count(*) AS n FROM orders GROUP BY region',
        '--schedule',
        '30s',
        '--mode',
        'full',
      );
      expect(result).toMatchObject({ code: 0, stderr: '' });
      expect(result.stdout).toMatch(
        /^created stream table public\.sales \(schedule 30s, mode FULL\): 3 rows in \d+ ms\n$/,
      );
      expect(await divergence(db.admin, 'sales')).toBe(0);
    });

    it('prints one JSON object with --json and keeps the SQL defaults for omitted options', async () => {
      const result = await cli(
        'create',
        'big_orders',
        '--query',
        'SELECT id, amount FROM orders WHERE amount > 20',
        '--json',
      );
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({
        name: 'public.big_orders',
        schedule: '1m',
        refresh_mode: 'AUTO',
        rows_inserted: 10,
        duration_ms: expect.any(Number),
        notices: [],
      });
    });

    it('names the stream table and quotes PostgreSQL on invalid SQL, exit 1', async () => {
      const result = await cli('create', 'broken', '--query', 'SELECT region FROMM orders');
      expect(failure(result)).toEqual({
        code: 1,
        lines: ['pgtrickle: error: create broken: syntax error at or near "orders"'],
      });
      expect(result.stdout).toBe('');
    });

    it('refuses an existing name with PostgreSQL message and hint', async () => {
      expect(failure(await cli('create', 'sales', '--query', 'SELECT 1 AS one'))).toEqual({
        code: 1,
        lines: [
          'pgtrickle: error: create sales: stream table "sales" already exists. Hint: Use pgtrickle.alter_stream_table() to change it, or drop it first.',
        ],
      });
    });

    it('refuses an invalid schedule with the hint of the SQL API', async () => {
      const { code, lines } = failure(
        await cli('create', 'x', '--query', 'SELECT 1 AS one', '--schedule', 'soon'),
      );
      expect(code).toBe(1);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^pgtrickle: error: create x: invalid schedule "soon".* Hint: Use a duration such as/,
      );
    });

    it('exits 2 on a bad mode or a missing --query', async () => {
      const mode = await cli('create', 'x', '--query', 'SELECT 1 AS one', '--mode', 'SOMETIMES');
      expect(mode.code).toBe(2);
      expect(mode.stderr).toMatch(
        /^error: option '--mode <mode>' argument 'SOMETIMES' is invalid\. Allowed values are AUTO, FULL, DIFFERENTIAL\.$/m,
      );
      const query = await cli('create', 'x');
      expect(query.code).toBe(2);
      expect(query.stderr).toMatch(/^error: required option '--query <sql>' not specified$/m);
    });
  });

  describe('alter', () => {
    it('changes only what is given', async () => {
      const result = await cli('alter', 'sales', '--schedule', '5m', '--mode', 'DIFFERENTIAL');
      expect(result).toMatchObject({ code: 0, stderr: '' });
      expect(result.stdout).toBe(
        'altered stream table public.sales: schedule 5m, refresh_mode DIFFERENTIAL\n',
      );
      const { rows } = await db.admin.query(
        "SELECT schedule, refresh_mode, status FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'sales'",
      );
      expect(rows).toEqual([{ schedule: '5m', refresh_mode: 'DIFFERENTIAL', status: 'ACTIVE' }]);
    });

    it('suspends and resumes with --status, and reports in JSON', async () => {
      const suspended = await cli('alter', 'sales', '--status', 'suspended', '--json');
      expect(suspended.code).toBe(0);
      expect(JSON.parse(suspended.stdout)).toEqual({
        name: 'public.sales',
        changed: { status: 'SUSPENDED' },
        notices: [],
      });
      const status = JSON.parse((await cli('status', '--json')).stdout) as { name: string; status: string }[];
      expect(status.find((s) => s.name === 'public.sales')?.status).toBe('SUSPENDED');
      expect((await cli('alter', 'sales', '--status', 'ACTIVE')).code).toBe(0);
    });

    it('refills the table for a new query', async () => {
      const result = await cli(
        'alter',
        'big_orders',
        '--query',
        'SELECT id, amount FROM orders WHERE amount > 25',
      );
      expect(result).toMatchObject({ code: 0, stdout: 'altered stream table public.big_orders: query\n' });
      expect(await divergence(db.admin, 'big_orders')).toBe(0);
    });

    it('answers an unknown stream table with one line and exit 1', async () => {
      expect(failure(await cli('alter', 'nope', '--schedule', '5m'))).toEqual({
        code: 1,
        lines: [
          'pgtrickle: error: alter nope: stream table "nope" does not exist. Hint: SELECT name FROM pgtrickle.pgt_status() lists the stream tables.',
        ],
      });
    });

    it('exits 2 when there is nothing to change', async () => {
      const result = await cli('alter', 'sales');
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(
        /^error: alter needs at least one of --query, --schedule, --mode, --status$/m,
      );
    });
  });

  describe('refresh', () => {
    it('refreshes and prints the history row, then prints the skip NOTICE when nothing changed', async () => {
      await db.admin.query("INSERT INTO orders VALUES (101, 'west', 7)");
      const first = await cli('refresh', 'sales');
      expect(first).toMatchObject({ code: 0, stderr: '' });
      expect(first.stdout).toMatch(
        /^refreshed public\.sales: FULL, 4 rows inserted, 3 deleted, 1 change consumed, \d+ ms \(refresh \d+\)\n$/,
      );
      const id = /\(refresh (\d+)\)/.exec(first.stdout)?.[1];
      const { rows } = await db.admin.query(
        'SELECT action, initiated_by, rows_inserted::int FROM pgtrickle.pgt_refresh_history WHERE refresh_id = $1',
        [id],
      );
      expect(rows).toEqual([{ action: 'FULL', initiated_by: 'MANUAL', rows_inserted: 4 }]);
      expect(await divergence(db.admin, 'sales')).toBe(0);

      const again = await cli('refresh', 'sales', '--json');
      expect(again.code).toBe(0);
      expect(JSON.parse(again.stdout)).toEqual({
        name: 'public.sales',
        outcome: 'skipped',
        reason: 'refresh skipped for "sales": no changes detected',
        busy: false,
        refresh: null,
        waited_for: [],
      });
    });

    it('reports a differential refresh with the changes it consumed', async () => {
      await cli('alter', 'big_orders', '--mode', 'DIFFERENTIAL');
      await makeDifferential(db.admin, 'big_orders');
      await db.admin.query("INSERT INTO orders VALUES (102, 'west', 70), (103, 'west', 80)");
      const result = await cli('refresh', 'big_orders', '--json');
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({
        outcome: 'refreshed',
        refresh: { action: 'DIFFERENTIAL', rows_inserted: 2, rows_deleted: 0, changes_consumed: 2 },
      });
      expect(await divergence(db.admin, 'big_orders')).toBe(0);
    });

    it('says another refresh is in progress without --wait, and with --wait refreshes once it ends', async () => {
      const holder = await db.connect();
      await holder.query('BEGIN');
      await holder.query("SELECT 1 FROM pgtrickle.pgt_stream_tables WHERE pgt_name = 'sales' FOR UPDATE");
      await holder.query("INSERT INTO orders VALUES (104, 'north', 5)");
      const busy = await cli('refresh', 'sales');
      expect(busy).toMatchObject({
        code: 0,
        stdout: 'refresh skipped for "sales": another refresh is in progress\n',
      });

      const waiting = pgtrickle([
        'refresh',
        'sales',
        '--wait',
        '--json',
        '--database-url',
        url,
        '--nats-url',
        natsUrl || 'nats://127.0.0.1:1',
      ]);
      await new Promise((r) => setTimeout(r, 1_500));
      await holder.query('COMMIT');
      const result = await waiting;
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({
        outcome: 'refreshed',
        refresh: { action: 'FULL' },
      });
      expect(await divergence(db.admin, 'sales')).toBe(0);
      await holder.end();
    });

    it('refuses a role that does not own the stream table', async () => {
      const result = await pgtrickle(['refresh', 'sales', '--database-url', asRole(url, stranger)]);
      expect(failure(result)).toEqual({
        code: 1,
        lines: ['pgtrickle: error: refresh sales: must be owner of stream table "sales"'],
      });
    });

    it('answers an unknown stream table with one line and exit 1', async () => {
      const { code, lines } = failure(await cli('refresh', 'public.nope'));
      expect(code).toBe(1);
      expect(lines).toEqual([
        'pgtrickle: error: refresh public.nope: stream table "public.nope" does not exist. Hint: SELECT name FROM pgtrickle.pgt_status() lists the stream tables.',
      ]);
    });
  });

  describe('status', () => {
    it('prints one row per stream table', async () => {
      const result = await cli('status');
      expect(result).toMatchObject({ code: 0, stderr: '' });
      const lines = result.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^NAME\s+STATUS\s+MODE\s+SCHEDULE\s+STALENESS\s+LAST REFRESH\s+ERRORS$/);
      expect(lines.slice(1)).toEqual([
        expect.stringMatching(
          /^public\.big_orders\s+ACTIVE\s+DIFFERENTIAL\s+1m\s+\S+\s+DIFFERENTIAL \S+, \S+ ago\s+0$/,
        ),
        expect.stringMatching(/^public\.sales\s+ACTIVE\s+DIFFERENTIAL\s+5m\s+\S+\s+FULL \S+, \S+ ago\s+0$/),
      ]);
    });

    it('prints a JSON array with --json', async () => {
      const rows = JSON.parse((await cli('status', '--json')).stdout);
      expect(rows).toEqual([
        expect.objectContaining({
          name: 'public.big_orders',
          status: 'ACTIVE',
          refresh_mode: 'DIFFERENTIAL',
          effective_mode: 'DIFFERENTIAL',
          schedule: '1m',
          is_populated: true,
          consecutive_errors: 0,
          last_refresh: expect.objectContaining({ action: 'DIFFERENTIAL' }),
        }),
        expect.objectContaining({ name: 'public.sales', schedule: '5m' }),
      ]);
      expect(rows[0].staleness_ms).toBeGreaterThanOrEqual(0);
    });

    it('says so when the database has no pgtrickle schema', async () => {
      const empty = await freshDatabase();
      try {
        const result = await pgtrickle(['status', '--database-url', empty.url]);
        expect(failure(result)).toEqual({
          code: 1,
          lines: [
            'pgtrickle: error: status: schema "pgtrickle" does not exist. Hint: Install the pgtrickle schema first: pgtrickle migrate.',
          ],
        });
      } finally {
        await empty.drop();
      }
    });

    it('fails with one line when the database is unreachable', async () => {
      const result = await pgtrickle(['status', '--database-url', 'postgres://127.0.0.1:1/nowhere']);
      expect(failure(result)).toEqual({
        code: 1,
        lines: [expect.stringMatching(/^pgtrickle: error: cannot connect to the database: .*ECONNREFUSED/)],
      });
    });
  });

  describe('explain', () => {
    it('prints the delta statement of a differential stream table', async () => {
      const result = await cli('explain', 'big_orders');
      expect(result).toMatchObject({ code: 0, stderr: '' });
      const { rows } = await db.admin.query(
        "SELECT delta_sql FROM pgtrickle.pgt_plans p JOIN pgtrickle.pgt_stream_tables st USING (pgt_id) WHERE st.pgt_name = 'big_orders'",
      );
      expect(result.stdout).toBe(`${rows[0].delta_sql}\n`);
    });

    it('prints EXPLAIN ANALYZE as JSON with --analyze --json', async () => {
      const result = await cli('explain', 'big_orders', '--analyze', '--json');
      expect(result.code).toBe(0);
      const out = JSON.parse(result.stdout);
      expect(out).toMatchObject({ name: 'public.big_orders', analyze: true, notices: [] });
      expect(out.plan[0].Plan).toBeDefined();
      expect(out.plan[0]['Execution Time']).toEqual(expect.any(Number));
    });

    it('passes on the NOTICE of a stream table without a differential plan', async () => {
      const result = await cli('explain', 'sales');
      expect(result.code).toBe(0);
      expect(result.stderr).toMatch(/^notice: stream table "sales" has no differential plan/);
      expect(result.stdout).toMatch(/^ SELECT orders\.region/);
    });

    it('refuses a role that does not own the stream table, and an unknown one', async () => {
      expect(failure(await pgtrickle(['explain', 'sales', '--database-url', asRole(url, stranger)]))).toEqual(
        {
          code: 1,
          lines: ['pgtrickle: error: explain sales: must be owner of stream table "sales"'],
        },
      );
      expect(failure(await cli('explain', 'nope')).code).toBe(1);
    });
  });

  describe('drop', () => {
    it('refuses while another stream table reads it, naming the dependents in one line', async () => {
      expect(
        (await cli('create', 'top_regions', '--query', 'SELECT region FROM sales WHERE total > 100')).code,
      ).toBe(0);
      const { code, lines } = failure(await cli('drop', 'sales'));
      expect(code).toBe(1);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^pgtrickle: error: drop sales: .*sales.*\. Detail: .*top_regions.* Hint: Use pgtrickle\.drop_stream_table\(name, cascade => true\)/,
      );
    });

    it('refuses a role that does not own it', async () => {
      expect(failure(await pgtrickle(['drop', 'sales', '--database-url', asRole(url, stranger)]))).toEqual({
        code: 1,
        lines: ['pgtrickle: error: drop sales: must be owner of stream table "sales"'],
      });
    });

    it('drops with --cascade and reports the dependents dropped', async () => {
      const result = await cli('drop', 'sales', '--cascade', '--json');
      expect(result.code).toBe(0);
      const out = JSON.parse(result.stdout);
      expect(out).toMatchObject({ name: 'public.sales', dropped: true });
      expect(out.notices.join('\n')).toMatch(/top_regions/);
      const { rows } = await db.admin.query('SELECT pgt_name FROM pgtrickle.pgt_stream_tables ORDER BY 1');
      expect(rows).toEqual([{ pgt_name: 'big_orders' }]);
    });

    it('answers an unknown stream table with one line and exit 1', async () => {
      expect(failure(await cli('drop', 'sales'))).toEqual({
        code: 1,
        lines: [
          'pgtrickle: error: drop sales: stream table "sales" does not exist. Hint: SELECT name FROM pgtrickle.pgt_status() lists the stream tables.',
        ],
      });
    });
  });

  describe('usage', () => {
    it('documents every command and its flags in --help', async () => {
      const top = await pgtrickle(['--help']);
      expect(top.code).toBe(0);
      // Each command's help from the same parser, in this process: a process per command is slow.
      const commands = new Map(program().commands.map((c) => [c.name(), c]));
      for (const command of [
        'migrate',
        'node',
        'create',
        'alter',
        'drop',
        'refresh',
        'status',
        'explain',
        'events',
        'top',
      ]) {
        expect(top.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
        const help = commands.get(command)?.helpInformation() ?? '';
        expect(help).toMatch(/--database-url <url>/);
        if (command !== 'node') expect(help).toMatch(/--json/);
        if (['node', 'refresh', 'events', 'top'].includes(command)) expect(help).toMatch(/--nats-url <urls>/);
      }
      expect(commands.get('node')?.helpInformation()).toMatch(
        /--metrics-port <port>[\s\S]*\(default: 9187,\s+env:\s+PGTRICKLE_METRICS_PORT\)/,
      );
      const alter = await pgtrickle(['alter', '--help']);
      expect(alter.code).toBe(0);
      expect(alter.stdout).toMatch(/^Usage: pgtrickle alter \[options\] <name>$/m);
    });

    it('exits 2 on an unknown option, a missing argument or a bad number', async () => {
      expect((await cli('status', '--colour')).code).toBe(2);
      expect((await cli('drop')).code).toBe(2);
      const count = await cli('events', '--count', 'many');
      expect(count.code).toBe(2);
      expect(count.stderr).toMatch(/Expected a positive number of events\./);
      const port = await pgtrickle(['node', '--database-url', url], { PGTRICKLE_METRICS_PORT: 'http' });
      expect(port.code).toBe(2);
      expect(port.stderr).toMatch(/Expected a TCP port from 0 \(any free port\) to 65535\./);
      const kv = await cli('node', '--kv-replicas', '7');
      expect(kv.code).toBe(2);
      expect(kv.stderr).toMatch(/Expected 1 to 5 replicas, as NATS JetStream allows\./);
    });

    it('exits 2 from top without a terminal, pointing to --json', async () => {
      const result = await cli('top');
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^error: top needs a terminal; use --json for a snapshot$/m);
    });
  });
});

describe.skipIf(!natsUrl)('pgtrickle events and top --json with a refresh node', () => {
  let db: TestDb;
  let node: RefreshNode | undefined;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    db = await migratedDatabase();
    await db.admin.query(`
      CREATE TABLE readings (id int PRIMARY KEY, sensor text, v int);
      INSERT INTO readings SELECT g, 's' || (g % 4), g FROM generate_series(1, 20) g;
      SELECT pgtrickle.create_stream_table('per_sensor',
        'SELECT sensor, sum(v) AS total FROM readings GROUP BY sensor', '200ms');
      SELECT pgtrickle.create_stream_table('"Odd.Name"', 'SELECT id FROM readings WHERE v > 10', '200ms');`);
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await node?.stop();
    await db?.drop();
  });

  /** Starts `pgtrickle events …` and resolves with its stdout once it exits. */
  function tail(args: string[]): Promise<Result> {
    const child = spawn(
      process.execPath,
      [...CLI, 'events', ...args, '--database-url', db.url, '--nats-url', natsUrl],
      {
        env: { ...process.env, PGTRICKLE_DATABASE_URL: '', PGTRICKLE_NATS_URL: '' },
      },
    );
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    return new Promise((resolve) =>
      child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr })),
    );
  }

  it('prints the refreshed events a node publishes, decoded, one JSON line each', async () => {
    const all = tail(['--json', '--count', '3']);
    const odd = tail(['"Odd.Name"', '--count', '1']);
    // The tails subscribe while the node starts; changes keep coming until both have their events.
    await new Promise((r) => setTimeout(r, 1_000));
    node = new RefreshNode({
      databaseUrl: db.url,
      natsUrls: [natsUrl],
      logger: createLogger({ level: process.env.PGT_TEST_LOG ?? 'warn' }),
      nodeId: 'cli-events',
      leaseTtlMs: 1_500,
      tickMs: 50,
    });
    await node.start();
    let done = false;
    const both = Promise.all([all, odd]).finally(() => {
      done = true;
    });
    for (let i = 0; !done && i < 100; i++) {
      await db.admin.query('UPDATE readings SET v = v + 1 WHERE id = $1', [1 + (i % 20)]);
      await new Promise((r) => setTimeout(r, 200));
    }
    const [allResult, oddResult] = await both;

    expect(allResult.code).toBe(0);
    const events = allResult.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events).toHaveLength(3);
    const refreshed = events.find((e) => e.type === 'refreshed');
    expect(refreshed).toMatchObject({
      v: 1,
      schema: 'public',
      node: 'cli-events',
      db: new URL(db.url).pathname.slice(1),
    });
    const { rows } = await db.admin.query(
      'SELECT pgt_name, action FROM pgtrickle.pgt_refresh_history h JOIN pgtrickle.pgt_stream_tables USING (pgt_id) WHERE refresh_id = $1',
      [refreshed.refresh_id],
    );
    expect(rows).toEqual([{ pgt_name: refreshed.name, action: refreshed.action }]);

    expect(oddResult.code).toBe(0);
    expect(oddResult.stdout).toMatch(
      /^\d{4}-\d\d-\d\dT[\d:.]+Z (refreshed|status|failed)\s+public\."Odd\.Name" .* node cli-events epoch \d+\n$/,
    );
  });

  it('top --json shows which node holds each stream table', async () => {
    await expect.poll(() => node?.heldIds().length, { timeout: 10_000 }).toBe(2);
    const result = await pgtrickle(['top', '--json', '--database-url', db.url, '--nats-url', natsUrl]);
    expect(result.code).toBe(0);
    const out = JSON.parse(result.stdout);
    expect(out.stream_tables).toEqual([
      expect.objectContaining({ name: 'public."Odd.Name"', node: 'cli-events' }),
      expect.objectContaining({ name: 'public.per_sensor', node: 'cli-events' }),
    ]);
    expect(out.stream_tables[1].latencies_ms.length).toBeGreaterThan(1);
    expect(out.nodes).toEqual([{ node: 'cli-events', state: 'alive', stream_tables: 2, expired_leases: 0 }]);
  });

  it('answers an unknown stream table and an unreachable NATS with one line and exit 1', async () => {
    expect(
      failure(await pgtrickle(['events', 'nope', '--database-url', db.url, '--nats-url', natsUrl])),
    ).toEqual({
      code: 1,
      lines: [
        'pgtrickle: error: events nope: stream table "nope" does not exist. Hint: SELECT name FROM pgtrickle.pgt_status() lists the stream tables.',
      ],
    });
    const { code, lines } = failure(
      await pgtrickle(['events', '--database-url', db.url, '--nats-url', 'nats://127.0.0.1:1']),
    );
    expect(code).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^pgtrickle: error: cannot connect to NATS at nats:\/\/127\.0\.0\.1:1: .* Hint: Pass --nats-url/,
    );
  });
});
