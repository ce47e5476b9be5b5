// Where the CLI finds NATS: --nats-url, then $PGTRICKLE_NATS_URL, then $NATS_URL, then localhost.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { CommandFailed } from './errors.js';

export const NATS_URL_HELP = 'NATS server URLs, comma-separated (default: $PGTRICKLE_NATS_URL, $NATS_URL)';

export function natsUrls(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  return (flag ?? env.PGTRICKLE_NATS_URL ?? env.NATS_URL ?? 'nats://127.0.0.1:4222')
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
}

export async function connectNats(urls: string[], name: string): Promise<NatsConnection> {
  try {
    return await connect({ servers: urls, name, timeout: 5_000 });
  } catch (err) {
    throw new CommandFailed(
      `cannot connect to NATS at ${urls.join(',')}`,
      err instanceof Error ? err.message : String(err),
      { hint: 'Pass --nats-url nats://host:4222 or set PGTRICKLE_NATS_URL.', cause: err },
    );
  }
}
