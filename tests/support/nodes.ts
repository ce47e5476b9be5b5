// Refresh nodes as separate processes (`pgtrickle node`), so tests can SIGKILL and SIGSTOP them
// like an operator's machine would. The process is node itself running the TypeScript through
// tsx's loader: a signal reaches the node, not an npx wrapper.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { track } from '../harness/index.js';

export interface NodeProcess {
  readonly id: string;
  readonly proc: ChildProcess;
  /** pino JSON lines written so far */
  readonly logs: Record<string, unknown>[];
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM and wait for the exit: the graceful handover */
  stop(): Promise<void>;
  readonly exited: Promise<number | null>;
}

export interface NodeProcessOptions {
  readonly id: string;
  readonly databaseUrl: string;
  readonly natsUrls: readonly string[];
  readonly leaseTtlMs: number;
  readonly tickMs: number;
  readonly kvReplicas?: number;
  readonly logLevel?: string;
  /** passed as --connection-pooler-mode */
  readonly connectionPoolerMode?: 'session' | 'transaction';
}

export function spawnNode(options: NodeProcessOptions): NodeProcess {
  const args = [
    '--import',
    'tsx',
    'cluster/cli.ts',
    'node',
    '--database-url',
    options.databaseUrl,
    '--nats-url',
    options.natsUrls.join(','),
    '--node-id',
    options.id,
    '--lease-ttl',
    String(options.leaseTtlMs),
    '--tick',
    String(options.tickMs),
    ...(options.connectionPoolerMode ? ['--connection-pooler-mode', options.connectionPoolerMode] : []),
  ];
  const env = {
    ...process.env,
    PGTRICKLE_LOG_LEVEL: options.logLevel ?? 'info',
    // Several nodes share this host: each takes a free port for its metrics endpoint.
    PGTRICKLE_METRICS_PORT: '0',
    ...(options.kvReplicas ? { PGTRICKLE_KV_REPLICAS: String(options.kvReplicas) } : {}),
  };
  const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ msg: line });
    }
  });
  createInterface({ input: proc.stderr as NodeJS.ReadableStream }).on('line', (line) => {
    stderr.push(line);
    if (process.env.PGT_TEST_LOG) console.error(`[${options.id}] ${line}`);
  });
  const exited = new Promise<number | null>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve(proc.exitCode);
    else proc.once('exit', (code) => resolve(code));
  });
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  const untrack = track({
    name: `pgtrickle node ${options.id}`,
    stop: async () => {
      if (!alive()) return;
      // A stopped process ignores SIGTERM until it is continued.
      proc.kill('SIGCONT');
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
    abort: () => {
      if (alive()) proc.kill('SIGKILL');
    },
  });
  return {
    id: options.id,
    proc,
    logs,
    exited,
    signal: (signal) => {
      if (alive()) proc.kill(signal);
    },
    stop: async () => {
      await untrack();
      if (stderr.length > 0 && process.env.PGT_TEST_LOG) console.error(stderr.join('\n'));
    },
  };
}

/** Resolves when the node logged a line whose msg is `msg`. */
export async function logged(node: NodeProcess, msg: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const last = () =>
    node.logs
      .slice(-10)
      .map((l) => JSON.stringify(l))
      .join('\n');
  while (!node.logs.some((l) => l.msg === msg)) {
    if (Date.now() > deadline) {
      throw new Error(`node ${node.id} did not log "${msg}" within ${timeoutMs} ms; last lines:\n${last()}`);
    }
    if (node.proc.exitCode !== null) {
      throw new Error(`node ${node.id} exited with ${node.proc.exitCode}; last lines:\n${last()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
