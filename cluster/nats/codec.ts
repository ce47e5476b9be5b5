// msgpack for everything pgtrickle puts on NATS: events and KV values. Every value carries its
// schema version `v`, so a reader can refuse what it does not understand instead of guessing.
import { Packr } from 'msgpackr';

// Plain maps, no record extension: consumers in other languages decode with any msgpack library.
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export class UnsupportedSchema extends Error {
  readonly code = 'UNSUPPORTED_SCHEMA';
  readonly version: unknown;

  constructor(what: string, version: unknown) {
    super(`cannot read ${what} of schema version ${String(version)}`);
    this.name = 'UnsupportedSchema';
    this.version = version;
  }
}

export function encode(value: object): Uint8Array {
  return packr.pack(value);
}

/** Decodes a value and checks its schema version. */
export function decode<T extends { v: number }>(bytes: Uint8Array, what: string, version: T['v']): T {
  const value = packr.unpack(bytes) as Partial<T> | null;
  if (value === null || typeof value !== 'object' || value.v !== version) {
    throw new UnsupportedSchema(what, value?.v);
  }
  return value as T;
}
