// The CLI's database session: one connection per command, with the NOTICEs it receives kept so
// a command can report them (a refresh's skip reason arrives as a NOTICE).
import pg from 'pg';
import { databaseUrl } from '../../shared/config.js';
import { about } from './errors.js';

export interface Session {
  readonly client: pg.Client;
  /** NOTICE and WARNING messages received since the last take */
  takeNotices(): { severity: string; message: string }[];
  end(): Promise<void>;
}

export async function openSession(flag: string | undefined, command: string): Promise<Session> {
  const url = databaseUrl(flag);
  const client = new pg.Client({ connectionString: url, application_name: `pgtrickle ${command}` });
  let notices: { severity: string; message: string }[] = [];
  client.on('notice', (msg) => {
    if (msg.message) notices.push({ severity: msg.severity ?? 'NOTICE', message: msg.message });
  });
  // A server restart while idle must become the command's error, not an unhandled event.
  client.on('error', () => undefined);
  await about('cannot connect to the database', () => client.connect());
  return {
    client,
    takeNotices: () => {
      const taken = notices;
      notices = [];
      return taken;
    },
    end: () => client.end().catch(() => undefined),
  };
}

export interface StreamTableRef {
  readonly id: string;
  readonly db: string;
  readonly schema: string;
  readonly name: string;
  /** quoted and schema-qualified, as pgt_status() shows it */
  readonly qualified: string;
}

/** Finds a stream table the way the SQL API does (search_path for unqualified names). */
export async function resolve(client: pg.ClientBase, name: string): Promise<StreamTableRef> {
  const { rows } = await client.query<StreamTableRef>(
    `SELECT st.pgt_id::text AS id, current_database() AS db, st.pgt_schema AS schema, st.pgt_name AS name,
            format('%I.%I', st.pgt_schema, st.pgt_name) AS qualified
       FROM pgtrickle.pgt_stream_tables st WHERE st.pgt_id = pgtrickle._resolve($1)`,
    [name],
  );
  const row = rows[0];
  if (row === undefined) throw new Error(`stream table "${name}" vanished while it was read`);
  return row;
}

export async function currentDatabase(client: pg.ClientBase): Promise<string> {
  const { rows } = await client.query<{ db: string }>('SELECT current_database() AS db');
  return rows[0]?.db ?? '';
}
