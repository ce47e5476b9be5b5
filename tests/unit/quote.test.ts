import { describe, expect, it } from 'vitest';
import { ident, literal, qualified } from '../../shared/pg/quote.js';

describe('quoting', () => {
  it('always double-quotes identifiers and doubles embedded quotes', () => {
    expect(ident('orders')).toBe('"orders"');
    expect(ident('Weird "name" ü')).toBe('"Weird ""name"" ü"');
    expect(ident('a; DROP TABLE x; --')).toBe('"a; DROP TABLE x; --"');
    expect(qualified('my schema', 'select')).toBe('"my schema"."select"');
  });

  it('refuses identifiers PostgreSQL cannot hold', () => {
    expect(() => ident('')).toThrow(RangeError);
    expect(() => ident('a\0b')).toThrow(RangeError);
  });

  it('quotes literals like quote_literal, with E-syntax for backslashes', () => {
    expect(literal("it's")).toBe("'it''s'");
    expect(literal('$$; DROP')).toBe("'$$; DROP'");
    expect(literal('a\\b')).toBe("E'a\\\\b'");
  });
});
