// Why a defining query cannot be maintained differentially: a typed error naming the construct.

export class UnsupportedConstruct extends Error {
  readonly code = 'UNSUPPORTED_CONSTRUCT';
  readonly construct: string;
  readonly hint: string | undefined;

  constructor(construct: string, hint?: string) {
    super(`differential refresh does not support ${construct}`);
    this.name = 'UnsupportedConstruct';
    this.construct = construct;
    this.hint = hint;
  }
}
