// Errors as the CLI reports them: one line on stderr that names the object, PostgreSQL's own
// message with its DETAIL and HINT, and an exit code scripts can trust.
import pg from 'pg';
import { PgTrickleError } from '../../shared/errors/index.js';

/** Exit codes: the job is done, the job failed, the command line was wrong. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** A failure of the job about one object: `subject` says which (`drop "public"."orders"`). */
export class CommandFailed extends PgTrickleError {
  readonly subject: string;

  constructor(subject: string, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super('COMMAND_FAILED', message, options);
    this.name = 'CommandFailed';
    this.subject = subject;
  }
}

// A database without the pgtrickle schema answers with "schema/function does not exist".
const NOT_INSTALLED = new Set(['3F000', '42883']);

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, '; ').trim();
}

function sentence(text: string): string {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

/** Runs `fn`, turning what PostgreSQL or the network throws into a CommandFailed about `subject`. */
export async function about<T>(subject: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof PgTrickleError) throw err;
    if (err instanceof pg.DatabaseError) {
      let message = err.message;
      if (err.detail) message = `${sentence(message)} Detail: ${err.detail}`;
      const hint =
        err.hint ??
        (err.code && NOT_INSTALLED.has(err.code) && /pgtrickle/.test(err.message)
          ? 'Install the pgtrickle schema first: pgtrickle migrate.'
          : undefined);
      throw new CommandFailed(subject, message, { hint, cause: err });
    }
    throw new CommandFailed(subject, err instanceof Error ? err.message : String(err), { cause: err });
  }
}

/** The one line main() writes to stderr for a failed command. */
export function errorLine(err: unknown): string {
  let message = err instanceof Error ? err.message : String(err);
  if (err instanceof CommandFailed) message = `${err.subject}: ${message}`;
  const hint = err instanceof PgTrickleError ? err.hint : undefined;
  const text = hint ? `${sentence(message)} Hint: ${hint}` : message;
  return `pgtrickle: error: ${oneLine(text)}`;
}
