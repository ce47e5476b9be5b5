// Typed errors with stable codes: callers switch on `code`, people read `message` and `hint`.

export type ErrorCode =
  | 'MIGRATION_FAILED'
  | 'MIGRATION_FILE_INVALID'
  | 'CATALOG_NEWER_THAN_NODE'
  | 'CONFIG_INVALID'
  | 'NO_DATABASE'
  | 'COMMAND_FAILED';

export class PgTrickleError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'PgTrickleError';
    this.code = code;
    this.hint = options.hint;
  }
}
