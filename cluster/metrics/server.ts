// The node's HTTP endpoint for Prometheus and Kubernetes, on node:http: GET /metrics, /healthz
// (the process answers) and /readyz (503 until migrations ran and the node joined the cluster).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NodeMetrics } from './registry.js';

export interface MetricsServerOptions {
  readonly metrics: NodeMetrics;
  /** 0 picks a free port */
  readonly port: number;
  readonly host: string;
}

export interface MetricsServer {
  /** the port bound, which differs from the one asked for when that was 0 */
  readonly port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { metrics } = options;
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (path) {
      case '/metrics':
        metrics.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
          (err: unknown) =>
            res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`),
        );
        return;
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      case '/readyz': {
        const ready = metrics.ready();
        res
          .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
          .end(ready ? 'ready\n' : 'not ready\n');
        return;
      }
      default:
        res
          .writeHead(404, { 'content-type': 'text/plain' })
          .end('not found: try /metrics, /healthz or /readyz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
