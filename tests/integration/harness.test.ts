// The test harness itself: shared and throwaway PostgreSQL servers, and NATS single node and cluster.
import { existsSync, readFileSync } from 'node:fs';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { freshDatabase, startNats, startPostgres } from '../harness/index.js';

async function query<T>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end();
  }
}

/** A zombie counts as gone: PID 1 here reaps the daemonised postmaster only after a while. */
function isRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('postgres harness', () => {
  it('hands out a fresh database on the shared server', async () => {
    const db = await freshDatabase();
    try {
      const [row] = await query<{ version: string }>(db.url, 'select version()');
      expect(row?.version).toMatch(/^PostgreSQL \d+/);
    } finally {
      await db.drop();
    }
  });

  it('starts a throwaway server and leaves no process, port or files after stop', async () => {
    const server = await startPostgres({ throwaway: true, settings: { application_name: 'a b' } });
    const [row] = await query<{ name: string }>(
      server.url,
      "select current_setting('application_name') as name",
    );
    // A value with a space proves settings survive pg_ctl's trip through /bin/sh.
    expect(row?.name).toBe('a b');
    const postmaster = server.dataDir
      ? Number(readFileSync(`${server.dataDir}/postmaster.pid`, 'utf8').split('\n')[0])
      : undefined;

    await server.stop();

    await expect(query(server.url, 'select 1')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    if (server.dataDir) expect(existsSync(server.dataDir)).toBe(false);
    if (postmaster) expect(isRunning(postmaster)).toBe(false);
  });
});

const natsUrl = inject('natsUrl');

describe.skipIf(!natsUrl)('nats harness', () => {
  it('round-trips a request through the shared server', async () => {
    const nc = await connect({ servers: natsUrl });
    try {
      nc.subscribe('harness.echo', {
        callback: (_err, msg) => {
          msg.respond(msg.data);
        },
      });
      const reply = await nc.request('harness.echo', 'ping', { timeout: 2_000 });
      expect(reply.string()).toBe('ping');
    } finally {
      await nc.close();
    }
  });

  it('starts a 3-node cluster that keeps a KV bucket with 3 replicas', async () => {
    const cluster = await startNats({ cluster: 3, throwaway: true });
    try {
      expect(cluster.urls).toHaveLength(3);
      const nc = await connect({ servers: cluster.urls });
      try {
        const kv = await new Kvm(nc).create('h', { replicas: 3 });
        expect((await kv.status()).replicas).toBe(3);
        await kv.put('k', 'v');
        // A get is a direct get, which any replica may answer, one that has not applied the put
        // yet included (a CI run read nothing right after it).
        await expect.poll(async () => (await kv.get('k'))?.string(), { timeout: 5_000 }).toBe('v');
      } finally {
        await nc.close();
      }
    } finally {
      await cluster.stop();
    }
  });
});
