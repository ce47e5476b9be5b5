// `pgtrickle node`: runs a refresh node until SIGTERM or SIGINT, then hands its stream tables over.
// The metrics endpoint opens first, so probes see the node as alive but not ready while it
// waits for the database and migrates.
import { databaseUrl } from '../../shared/config.js';
import { createLogger } from '../../shared/logger.js';
import { NodeMetrics, startMetricsServer } from '../metrics/index.js';
import { RefreshNode } from '../node/index.js';
import { connectionPoolerMode } from '../node/pooler.js';
import { CommandFailed } from './errors.js';
import { natsUrls } from './nats.js';

export interface NodeFlags {
  databaseUrl?: string;
  natsUrl?: string;
  nodeId?: string;
  leaseTtl?: number;
  tick?: number;
  poolSize?: number;
  kvReplicas?: number;
  connectionPoolerMode?: string;
  migrate: boolean;
  metricsPort: number;
  metricsHost: string;
}

export async function runNode(opts: NodeFlags): Promise<void> {
  const logger = createLogger();
  const metrics = new NodeMetrics();
  const node = new RefreshNode({
    databaseUrl: databaseUrl(opts.databaseUrl),
    natsUrls: natsUrls(opts.natsUrl),
    logger,
    nodeId: opts.nodeId,
    leaseTtlMs: opts.leaseTtl,
    tickMs: opts.tick,
    poolSize: opts.poolSize,
    kvReplicas: opts.kvReplicas,
    connectionPoolerMode: connectionPoolerMode(opts.connectionPoolerMode),
    migrate: opts.migrate,
    metrics,
  });
  const server = await startMetricsServer({ metrics, port: opts.metricsPort, host: opts.metricsHost }).catch(
    (err: unknown) => {
      throw new CommandFailed(
        `cannot serve metrics on ${opts.metricsHost}:${opts.metricsPort}`,
        err instanceof Error ? err.message : String(err),
        {
          hint: 'Pass --metrics-port with a free port (0 picks one), or set PGTRICKLE_METRICS_PORT.',
          cause: err,
        },
      );
    },
  );
  logger.info({ node: node.id, host: opts.metricsHost, port: server.port }, 'metrics endpoint listening');
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
    try {
      await node.start();
    } catch (err) {
      await node.stop().catch(() => undefined);
      throw err;
    }
    await stopped;
  } finally {
    await server.close();
  }
}
