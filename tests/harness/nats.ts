// NATS servers with JetStream for tests: the one named by NATS_URL, or throwaway nats-server
// processes (one node or a routed cluster) on loopback ports.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { freePorts } from './ports.js';
import { killNow, removeNow, track } from './processes.js';

export interface NatsServer {
  urls: string[];
  /** client url of node i */
  url: string;
  stop(): Promise<void>;
  kill(i: number, signal?: NodeJS.Signals): void;
  restart?(i: number): Promise<void>;
}

export interface StartNatsOptions {
  /** number of routed nodes; omitted means one node without clustering */
  cluster?: number;
  /** force new servers even if NATS_URL is set */
  throwaway?: boolean;
}

export class NatsServerNotFound extends Error {
  readonly code = 'NATS_SERVER_NOT_FOUND';
}

const BINARY = 'nats-server';
const LOG_TAIL_CHARS = 8_000;
const READY_TIMEOUT_MS = 15_000;
const JETSTREAM_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const START_ATTEMPTS = 3;

interface Node {
  name: string;
  config: string;
  url: string;
  proc?: ChildProcess;
  /** Tail of the node's stdout and stderr, across restarts. */
  log: string;
}

/** A node lost the race for a port that was free when we picked it. */
class PortTaken extends Error {}

export async function startNats(opts: StartNatsOptions = {}): Promise<NatsServer> {
  const envUrl = process.env.NATS_URL;
  if (envUrl && !opts.throwaway) return fromEnv(envUrl);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNodes(opts.cluster ?? 1);
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt === START_ATTEMPTS) throw err;
    }
  }
}

function fromEnv(envUrl: string): NatsServer {
  const urls = envUrl
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  return {
    urls,
    url: urls[0] ?? envUrl,
    stop: async () => {},
    kill: () => {
      throw new Error('cannot signal the NATS_URL server; start one with { throwaway: true }');
    },
  };
}

async function startNodes(size: number): Promise<NatsServer> {
  const root = await mkdtemp(join(tmpdir(), 'pgt-nats-'));
  const ports = await freePorts(size * 2);
  const clientPorts = ports.slice(0, size);
  const routePorts = ports.slice(size);
  const nodes: Node[] = clientPorts.map((port, i) => ({
    name: `n${i}`,
    config: join(root, `n${i}.conf`),
    url: `nats://127.0.0.1:${port}`,
    log: '',
  }));
  const logs = () => nodes.map((n) => `--- ${n.name} ---\n${n.log}`).join('\n');
  const stop = track({
    name: `nats-server ${root}`,
    stop: async () => {
      await Promise.all(nodes.map((n) => stopProcess(n.proc)));
      await rm(root, { recursive: true, force: true });
    },
    abort: () => {
      for (const n of nodes) killNow(n.proc);
      removeNow(root);
    },
  });
  try {
    await Promise.all(
      nodes.map(async (node, i) => {
        const storeDir = join(root, node.name);
        await mkdir(storeDir);
        const lines = [
          `server_name: ${JSON.stringify(node.name)}`,
          `listen: "127.0.0.1:${clientPorts[i]}"`,
          `jetstream { store_dir: ${JSON.stringify(storeDir)} }`,
        ];
        if (size > 1) {
          const routes = routePorts.filter((_, j) => j !== i).map((p) => `"nats-route://127.0.0.1:${p}"`);
          lines.push(
            `cluster { name: "pgt", listen: "127.0.0.1:${routePorts[i]}", routes: [${routes.join(', ')}] }`,
          );
        }
        await writeFile(node.config, `${lines.join('\n')}\n`);
        await spawnNode(node);
      }),
    );
    const urls = nodes.map((n) => n.url);
    await waitForJetStream(urls);
    const nodeAt = (i: number): Node => {
      const node = nodes[i];
      if (!node) throw new RangeError(`no NATS node ${i}; the cluster has ${size}`);
      return node;
    };
    return {
      urls,
      url: nodes[0]?.url ?? '',
      stop,
      kill: (i, signal = 'SIGKILL') => {
        nodeAt(i).proc?.kill(signal);
      },
      restart: async (i) => {
        const node = nodeAt(i);
        await stopProcess(node.proc);
        await spawnNode(node);
      },
    };
  } catch (err) {
    await stop();
    if (err instanceof PortTaken || err instanceof NatsServerNotFound) throw err;
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${logs()}`, {
      cause: err,
    });
  }
}

/** Starts the node's process and resolves once it logs that it accepts clients. */
function spawnNode(node: Node): Promise<void> {
  const proc = spawn(BINARY, ['-c', node.config], { stdio: ['ignore', 'pipe', 'pipe'] });
  node.proc = proc;
  // Only this run's output counts: the log tail may hold "ready" from before a restart.
  let output = '';
  let waiting = true;
  return new Promise((resolve, reject) => {
    const settle = (err?: Error) => {
      if (!waiting) return;
      waiting = false;
      clearTimeout(timer);
      proc.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    };
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      node.log = (node.log + text).slice(-LOG_TAIL_CHARS);
      if (!waiting) return;
      output += text;
      if (output.includes('Server is ready')) settle();
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (/address already in use/i.test(output)) settle(new PortTaken(`${node.name}: port taken`));
      else settle(new Error(`${node.name} exited (${code ?? signal}) before it was ready`));
    };
    const timer = setTimeout(
      () => settle(new Error(`${node.name} not ready after ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS,
    );
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    proc.once('exit', onExit);
    proc.on('error', (err: NodeJS.ErrnoException) => {
      settle(err.code === 'ENOENT' ? new NatsServerNotFound(`${BINARY} is not on PATH`) : err);
    });
  });
}

async function waitForJetStream(urls: string[]): Promise<void> {
  // A cluster answers clients before its JetStream meta group has a leader; until then API
  // requests go unanswered, so each try gets a short timeout instead of the default 5 s.
  const nc = await connect({ servers: urls, timeout: 2_000 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 500, checkAPI: false });
    const deadline = Date.now() + JETSTREAM_TIMEOUT_MS;
    for (;;) {
      try {
        await jsm.getAccountInfo();
        return;
      } catch (err) {
        if (Date.now() > deadline) {
          throw new Error(`JetStream not usable after ${JETSTREAM_TIMEOUT_MS} ms: ${err}`);
        }
      }
      await sleep(100);
    }
  } finally {
    await nc.close();
  }
}

async function stopProcess(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  const escalate = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(escalate);
}
