// Registry of every server the harness starts, so each one dies with the test process even when a
// test fails, forgets to stop it, or the runner is interrupted.
import { type ChildProcess, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

export interface Resource {
  /** Names the resource in errors. */
  name: string;
  /** Graceful shutdown that also removes the resource's files. */
  stop(): Promise<void>;
  /** Last resort while the process exits: synchronous, fast, never throws. */
  abort(): void;
}

const live = new Set<Resource>();
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let hooked = false;

/**
 * Registers a started (or starting) resource and returns its stop function, which is safe to call
 * more than once. A resource whose stop fails stays registered, so the exit hook still aborts it.
 */
export function track(resource: Resource): () => Promise<void> {
  hookExit();
  live.add(resource);
  let stopping: Promise<void> | undefined;
  return () => {
    stopping ??= resource.stop().then(() => {
      live.delete(resource);
    });
    return stopping;
  };
}

function abortAll(): void {
  for (const resource of live) {
    try {
      resource.abort();
    } catch {
      // Keep going: one broken resource must not leave the others running.
    }
  }
  live.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  abortAll();
  for (const s of SIGNALS) process.off(s, onSignal);
  // Listening to a signal cancels Node's default exit, so re-raise it unless someone else (vitest's
  // own handler, say) has taken charge of it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', abortAll);
  for (const s of SIGNALS) process.on(s, onSignal);
  // A forked test worker outlives a runner that exits without stopping its pool (vitest on a
  // SIGTERM sent to it alone); the closing IPC channel is then the only sign.
  if (process.send) process.once('disconnect', abortAll);
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** PostgreSQL refuses to run as root, so as root its tools run as the `postgres` OS user. */
export function asPostgresUser(file: string, args: string[]): [string, string[]] {
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
}

export function stopPostgresNow(binDir: string, dataDir: string): void {
  // No waiting (-W): vitest SIGKILLs a worker 500 ms after its SIGTERM, and immediate mode's
  // SIGQUIT ends the postmaster on its own.
  const [file, args] = asPostgresUser(join(binDir, 'pg_ctl'), [
    'stop',
    '-D',
    dataDir,
    '-m',
    'immediate',
    '-W',
  ]);
  spawnSync(file, args, { cwd: '/', stdio: 'ignore', timeout: 2_000 });
}

export function killNow(child: ChildProcess | undefined): void {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

export function removeNow(dir: string): void {
  // Retries cover a dying server still unlinking its own files underneath us.
  rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 20 });
}
