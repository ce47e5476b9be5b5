// A deterministic TPC-H data generator (spec 2.18 / 4.2) and its change workload: RF1 (new
// orders with lineitems), RF2 (deletes of old orders) and key-preserving updates, all by seed.
import type pg from 'pg';

export type ScaleFactor = 0.01 | 0.1 | 1;

/** Tables in load order, with the spec's column types and a primary key each. */
export const SCHEMA = `
CREATE TABLE region (r_regionkey integer PRIMARY KEY, r_name char(25) NOT NULL, r_comment varchar(152) NOT NULL);
CREATE TABLE nation (n_nationkey integer PRIMARY KEY, n_name char(25) NOT NULL, n_regionkey integer NOT NULL,
  n_comment varchar(152) NOT NULL);
CREATE TABLE supplier (s_suppkey integer PRIMARY KEY, s_name char(25) NOT NULL, s_address varchar(40) NOT NULL,
  s_nationkey integer NOT NULL, s_phone char(15) NOT NULL, s_acctbal numeric(15,2) NOT NULL,
  s_comment varchar(101) NOT NULL);
CREATE TABLE customer (c_custkey integer PRIMARY KEY, c_name varchar(25) NOT NULL, c_address varchar(40) NOT NULL,
  c_nationkey integer NOT NULL, c_phone char(15) NOT NULL, c_acctbal numeric(15,2) NOT NULL,
  c_mktsegment char(10) NOT NULL, c_comment varchar(117) NOT NULL);
CREATE TABLE part (p_partkey integer PRIMARY KEY, p_name varchar(55) NOT NULL, p_mfgr char(25) NOT NULL,
  p_brand char(10) NOT NULL, p_type varchar(25) NOT NULL, p_size integer NOT NULL, p_container char(10) NOT NULL,
  p_retailprice numeric(15,2) NOT NULL, p_comment varchar(23) NOT NULL);
CREATE TABLE partsupp (ps_partkey integer NOT NULL, ps_suppkey integer NOT NULL, ps_availqty integer NOT NULL,
  ps_supplycost numeric(15,2) NOT NULL, ps_comment varchar(199) NOT NULL, PRIMARY KEY (ps_partkey, ps_suppkey));
CREATE TABLE orders (o_orderkey integer PRIMARY KEY, o_custkey integer NOT NULL, o_orderstatus char(1) NOT NULL,
  o_totalprice numeric(15,2) NOT NULL, o_orderdate date NOT NULL, o_orderpriority char(15) NOT NULL,
  o_clerk char(15) NOT NULL, o_shippriority integer NOT NULL, o_comment varchar(79) NOT NULL);
CREATE TABLE lineitem (l_orderkey integer NOT NULL, l_partkey integer NOT NULL, l_suppkey integer NOT NULL,
  l_linenumber integer NOT NULL, l_quantity numeric(15,2) NOT NULL, l_extendedprice numeric(15,2) NOT NULL,
  l_discount numeric(15,2) NOT NULL, l_tax numeric(15,2) NOT NULL, l_returnflag char(1) NOT NULL,
  l_linestatus char(1) NOT NULL, l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL,
  l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL, l_comment varchar(44) NOT NULL,
  PRIMARY KEY (l_orderkey, l_linenumber));
`;

// Foreign-key indexes (allowed by spec 1.4.2.2): the correlated subqueries of Q17 and Q20 and
// the delta joins probe them.
export const INDEXES = `
CREATE INDEX ON nation (n_regionkey);
CREATE INDEX ON supplier (s_nationkey);
CREATE INDEX ON customer (c_nationkey);
CREATE INDEX ON partsupp (ps_suppkey);
CREATE INDEX ON orders (o_custkey);
CREATE INDEX ON lineitem (l_partkey, l_suppkey);
CREATE INDEX ON lineitem (l_suppkey);
`;

const TABLES = [
  'region',
  'nation',
  'supplier',
  'customer',
  'part',
  'partsupp',
  'orders',
  'lineitem',
] as const;
type Table = (typeof TABLES)[number];
type Row = (string | number)[];

/** mulberry32: small, fast and good enough for test data; one stream per table keeps tables independent. */
export class Prng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.next() * list.length)] as T;
  }
}

function streamSeed(seed: number, stream: number): number {
  return (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(stream + 1, 0xc2b2ae35)) >>> 0;
}

// ---- value domains (spec 4.2.2.13 and 4.2.3) ----

const REGIONS = ['AFRICA', 'AMERICA', 'ASIA', 'EUROPE', 'MIDDLE EAST'];
const NATIONS: [string, number][] = [
  ['ALGERIA', 0],
  ['ARGENTINA', 1],
  ['BRAZIL', 1],
  ['CANADA', 1],
  ['EGYPT', 4],
  ['ETHIOPIA', 0],
  ['FRANCE', 3],
  ['GERMANY', 3],
  ['INDIA', 2],
  ['INDONESIA', 2],
  ['IRAN', 4],
  ['IRAQ', 4],
  ['JAPAN', 2],
  ['JORDAN', 4],
  ['KENYA', 0],
  ['MOROCCO', 0],
  ['MOZAMBIQUE', 0],
  ['PERU', 1],
  ['CHINA', 2],
  ['ROMANIA', 3],
  ['SAUDI ARABIA', 4],
  ['VIETNAM', 2],
  ['RUSSIA', 3],
  ['UNITED KINGDOM', 3],
  ['UNITED STATES', 1],
];
const SEGMENTS = ['AUTOMOBILE', 'BUILDING', 'FURNITURE', 'MACHINERY', 'HOUSEHOLD'];
const PRIORITIES = ['1-URGENT', '2-HIGH', '3-MEDIUM', '4-NOT SPECIFIED', '5-LOW'];
const INSTRUCTIONS = ['DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'];
const MODES = ['REG AIR', 'AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL', 'FOB'];
const TYPE_1 = ['STANDARD', 'SMALL', 'MEDIUM', 'LARGE', 'ECONOMY', 'PROMO'];
const TYPE_2 = ['ANODIZED', 'BURNISHED', 'PLATED', 'POLISHED', 'BRUSHED'];
const TYPE_3 = ['TIN', 'NICKEL', 'BRASS', 'STEEL', 'COPPER'];
const CONTAINER_1 = ['SM', 'LG', 'MED', 'JUMBO', 'WRAP'];
const CONTAINER_2 = ['CASE', 'BOX', 'BAG', 'JAR', 'PKG', 'PACK', 'CAN', 'DRUM'];
const COLORS =
  `almond antique aquamarine azure beige bisque black blanched blue blush brown burlywood burnished
  chartreuse chiffon chocolate coral cornflower cornsilk cream cyan dark deep dim dodger drab firebrick floral forest
  frosted gainsboro ghost goldenrod green grey honeydew hot indian ivory khaki lace lavender lawn lemon light lime
  linen magenta maroon medium metallic midnight mint misty moccasin navajo navy olive orange orchid pale papaya peach
  peru pink plum powder puff purple red rose rosy royal saddle salmon sandy seashell sienna sky slate smoke snow
  spring steel tan thistle tomato turquoise violet wheat white yellow`.split(/\s+/);

// The text grammar of spec 4.2.2.10; dbgen weights packages/requests/accounts/deposits and the
// adjectives Q13 looks for more heavily, so they are listed more than once.
const NOUNS = `foxes ideas theodolites pinto|beans instructions dependencies excuses platelets asymptotes courts
  dolphins multipliers sauternes warthogs frets dinos attainments somas Tiresias patterns forges braids
  hockey|players frays warhorses dugouts notornis epitaphs pearls tithes waters orbits gifts sheaves depths
  sentiments decoys realms pains grouches escapades packages packages packages requests requests requests
  accounts accounts accounts deposits deposits deposits`;
const VERBS = `sleep wake are cajole haggle nag use boost affix detect integrate maintain nod was lose sublate solve
  thrash promise engage hinder print x-ray breach eat grow impress mold poach serve run dazzle snooze doze unwind
  kindle play hang believe doubt`;
const ADJECTIVES = `furious sly careful blithe quick fluffy slow quiet ruthless thin close dogged daring brave stealthy
  permanent enticing idle busy regular final ironic even bold silent special special pending pending unusual express`;
const ADVERBS = `sometimes always never furiously slyly carefully blithely quickly fluffily slowly quietly ruthlessly
  thinly closely doggedly daringly bravely stealthily permanently enticingly idly busily regularly finally ironically
  evenly boldly silently`;
const PREPOSITIONS = `about above according|to across after against along alongside|of among around at atop before
  behind beneath beside besides between beyond by despite during except for from in|place|of inside instead|of into
  near of on outside over past since through throughout to toward under until up upon without with within`;
const AUXILIARIES = `do may might shall will would can could should ought|to must will|have|to shall|have|to
  could|have|to should|have|to must|have|to need|to try|to`;
const words = (list: string) =>
  list
    .trim()
    .split(/\s+/)
    .map((w) => w.replaceAll('|', ' '));
const GRAMMAR = {
  noun: words(NOUNS),
  verb: words(VERBS),
  adjective: words(ADJECTIVES),
  adverb: words(ADVERBS),
  preposition: words(PREPOSITIONS),
  auxiliary: words(AUXILIARIES),
  terminator: ['.', ';', ':', '?', '!', '--'],
};

function sentence(r: Prng): string {
  const g = GRAMMAR;
  const nounPhrase = () => {
    switch (r.int(0, 3)) {
      case 0:
        return r.pick(g.noun);
      case 1:
        return `${r.pick(g.adjective)} ${r.pick(g.noun)}`;
      case 2:
        return `${r.pick(g.adjective)}, ${r.pick(g.adjective)} ${r.pick(g.noun)}`;
      default:
        return `${r.pick(g.adverb)} ${r.pick(g.adjective)} ${r.pick(g.noun)}`;
    }
  };
  const verbPhrase = () => {
    switch (r.int(0, 3)) {
      case 0:
        return r.pick(g.verb);
      case 1:
        return `${r.pick(g.auxiliary)} ${r.pick(g.verb)}`;
      case 2:
        return `${r.pick(g.verb)} ${r.pick(g.adverb)}`;
      default:
        return `${r.pick(g.auxiliary)} ${r.pick(g.verb)} ${r.pick(g.adverb)}`;
    }
  };
  const prepPhrase = () => `${r.pick(g.preposition)} the ${nounPhrase()}`;
  const end = r.pick(g.terminator);
  switch (r.int(0, 4)) {
    case 0:
      return `${nounPhrase()} ${verbPhrase()}${end}`;
    case 1:
      return `${nounPhrase()} ${verbPhrase()} ${prepPhrase()}${end}`;
    case 2:
      return `${nounPhrase()} ${verbPhrase()} ${nounPhrase()}${end}`;
    case 3:
      return `${nounPhrase()} ${prepPhrase()} ${verbPhrase()} ${nounPhrase()}${end}`;
    default:
      return `${nounPhrase()} ${prepPhrase()} ${verbPhrase()} ${prepPhrase()}${end}`;
  }
}

/** dbgen draws every comment as a random substring of one pool of grammar text (spec 4.2.2.10). */
class TextPool {
  private readonly text: string;
  constructor(seed: number, size = 1 << 20) {
    const r = new Prng(seed);
    const parts: string[] = [];
    let length = 0;
    while (length < size) {
      const s = sentence(r);
      parts.push(s);
      length += s.length + 1;
    }
    this.text = parts.join(' ');
  }
  /** Text of length uniform in [min, max] (spec: mean length (min+max)/2). */
  comment(r: Prng, min: number, max: number): string {
    const length = r.int(min, max);
    const start = r.int(0, this.text.length - length - 1);
    return this.text.slice(start, start + length).trim();
  }
}

const ALNUM = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,';
function vstring(r: Prng, min: number, max: number): string {
  const length = r.int(min, max);
  let s = '';
  for (let i = 0; i < length; i++) s += ALNUM[r.int(0, ALNUM.length - 1)];
  return s;
}

function phone(r: Prng, nationKey: number): string {
  return `${nationKey + 10}-${r.int(100, 999)}-${r.int(100, 999)}-${r.int(1000, 9999)}`;
}

/** Money kept as integer cents so sums stay exact; printed as numeric literals. */
const money = (cents: number) => {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
};

const DAY = 86_400_000;
const epochDay = (iso: string) => Date.parse(`${iso}T00:00:00Z`) / DAY;
const isoDate = (day: number) => new Date(day * DAY).toISOString().slice(0, 10);
const START_DATE = epochDay('1992-01-01');
const END_DATE = epochDay('1998-12-31');
const CURRENT_DATE = epochDay('1995-06-17');

/** Sizes of a scale factor (spec 4.2.5); at least one row each so SF 0.01 stays meaningful. */
export function cardinalities(sf: number) {
  return {
    suppliers: Math.max(1, Math.round(sf * 10_000)),
    customers: Math.max(1, Math.round(sf * 150_000)),
    parts: Math.max(1, Math.round(sf * 200_000)),
    orders: Math.max(1, Math.round(sf * 1_500_000)),
    clerks: Math.max(1, Math.round(sf * 1000)),
  };
}

/** The i-th (0..3) supplier of a part (spec 4.2.3, PS_SUPPKEY). */
function supplierOf(partKey: number, i: number, suppliers: number): number {
  return (
    ((partKey + i * (Math.floor(suppliers / 4) + Math.floor((partKey - 1) / suppliers))) % suppliers) + 1
  );
}

function retailPrice(partKey: number): number {
  return 90_000 + (Math.floor(partKey / 10) % 20_001) + 100 * (partKey % 1000);
}

/** Orders use the first 8 of every 32 keys (spec 4.2.3), leaving the rest for updates. */
const orderKey = (index: number) => Math.floor(index / 8) * 32 + (index % 8) + 1;

interface Order {
  row: Row;
  lines: Row[];
}

/** Everything the change workload needs to stay deterministic across cycles. */
export interface TpchState {
  sf: number;
  seed: number;
  /** Keys of the orders present, ascending; RF2 deletes from the front, RF1 appends. */
  liveOrders: number[];
  nextOrderIndex: number;
  cycle: number;
  pool: TextPool;
}

function makeOrder(state: TpchState, r: Prng, index: number): Order {
  const n = cardinalities(state.sf);
  const key = orderKey(index);
  let custKey = r.int(1, n.customers);
  // A third of the customers never order (spec 4.2.3), which Q13 and Q22 count on.
  while (custKey % 3 === 0) custKey = r.int(1, n.customers);
  const orderDate = r.int(START_DATE, END_DATE - 151);
  const lines: Row[] = [];
  let total = 0;
  let shipped = 0;
  const count = r.int(1, 7);
  for (let line = 1; line <= count; line++) {
    const partKey = r.int(1, n.parts);
    const suppKey = supplierOf(partKey, r.int(0, 3), n.suppliers);
    const quantity = r.int(1, 50);
    const extended = quantity * retailPrice(partKey);
    const discount = r.int(0, 10);
    const tax = r.int(0, 8);
    const shipDate = orderDate + r.int(1, 121);
    const commitDate = orderDate + r.int(30, 90);
    const receiptDate = shipDate + r.int(1, 30);
    const returnFlag = receiptDate <= CURRENT_DATE ? r.pick(['R', 'A']) : 'N';
    const lineStatus = shipDate > CURRENT_DATE ? 'O' : 'F';
    if (lineStatus === 'F') shipped++;
    total += Math.round((extended * (100 + tax) * (100 - discount)) / 10_000);
    lines.push([
      key,
      partKey,
      suppKey,
      line,
      `${quantity}.00`,
      money(extended),
      money(discount),
      money(tax),
      returnFlag,
      lineStatus,
      isoDate(shipDate),
      isoDate(commitDate),
      isoDate(receiptDate),
      r.pick(INSTRUCTIONS),
      r.pick(MODES),
      state.pool.comment(r, 10, 43),
    ]);
  }
  const status = shipped === count ? 'F' : shipped === 0 ? 'O' : 'P';
  const row: Row = [
    key,
    custKey,
    status,
    money(total),
    isoDate(orderDate),
    r.pick(PRIORITIES),
    `Clerk#${String(r.int(1, n.clerks)).padStart(9, '0')}`,
    0,
    state.pool.comment(r, 19, 78),
  ];
  return { row, lines };
}

/** Rows of the small tables, generated whole. */
function* dimensionRows(state: TpchState): Generator<[Table, Row]> {
  const n = cardinalities(state.sf);
  const pool = state.pool;
  const r = (stream: number) => new Prng(streamSeed(state.seed, stream));

  const rr = r(0);
  for (const [i, name] of REGIONS.entries()) yield ['region', [i, name, pool.comment(rr, 31, 115)]];
  const rn = r(1);
  for (const [i, [name, region]] of NATIONS.entries())
    yield ['nation', [i, name, region, pool.comment(rn, 31, 114)]];

  const rs = r(2);
  // SF*5 suppliers complain and SF*5 recommend (spec 4.2.3), which Q16 filters on.
  const special = Math.max(1, Math.round(state.sf * 5));
  const marked = new Map<number, string>();
  while (marked.size < Math.min(n.suppliers, 2 * special)) {
    const key = rs.int(1, n.suppliers);
    if (!marked.has(key)) marked.set(key, marked.size < special ? 'Complaints' : 'Recommends');
  }
  for (let key = 1; key <= n.suppliers; key++) {
    const nation = rs.int(0, 24);
    let comment = pool.comment(rs, 25, 100);
    const mark = marked.get(key);
    if (mark) {
      const at = rs.int(0, Math.max(0, comment.length - 30));
      comment = `${comment.slice(0, at)}Customer ${comment.slice(at, at + 10)}${mark}`.slice(0, 101);
    }
    yield [
      'supplier',
      [
        key,
        `Supplier#${String(key).padStart(9, '0')}`,
        vstring(rs, 10, 40),
        nation,
        phone(rs, nation),
        money(rs.int(-99_999, 999_999)),
        comment,
      ],
    ];
  }

  const rc = r(3);
  for (let key = 1; key <= n.customers; key++) {
    const nation = rc.int(0, 24);
    yield [
      'customer',
      [
        key,
        `Customer#${String(key).padStart(9, '0')}`,
        vstring(rc, 10, 40),
        nation,
        phone(rc, nation),
        money(rc.int(-99_999, 999_999)),
        rc.pick(SEGMENTS),
        pool.comment(rc, 29, 116),
      ],
    ];
  }

  const rp = r(4);
  for (let key = 1; key <= n.parts; key++) {
    const colors = new Set<string>();
    while (colors.size < 5) colors.add(rp.pick(COLORS));
    const mfgr = rp.int(1, 5);
    yield [
      'part',
      [
        key,
        [...colors].join(' '),
        `Manufacturer#${mfgr}`,
        `Brand#${mfgr}${rp.int(1, 5)}`,
        `${rp.pick(TYPE_1)} ${rp.pick(TYPE_2)} ${rp.pick(TYPE_3)}`,
        rp.int(1, 50),
        `${rp.pick(CONTAINER_1)} ${rp.pick(CONTAINER_2)}`,
        money(retailPrice(key)),
        pool.comment(rp, 5, 22),
      ],
    ];
    for (let i = 0; i < 4; i++) {
      yield [
        'partsupp',
        [
          key,
          supplierOf(key, i, n.suppliers),
          rp.int(1, 9999),
          money(rp.int(100, 100_000)),
          pool.comment(rp, 49, 198),
        ],
      ];
    }
  }
}

// One array parameter per column: any number of rows in one statement, no 65,535-parameter limit.
const COLUMN_TYPES: Record<Table, string[]> = {
  region: ['int', 'text', 'text'],
  nation: ['int', 'text', 'int', 'text'],
  supplier: ['int', 'text', 'text', 'int', 'text', 'numeric', 'text'],
  customer: ['int', 'text', 'text', 'int', 'text', 'numeric', 'text', 'text'],
  part: ['int', 'text', 'text', 'text', 'text', 'int', 'text', 'numeric', 'text'],
  partsupp: ['int', 'int', 'int', 'numeric', 'text'],
  orders: ['int', 'int', 'text', 'numeric', 'date', 'text', 'text', 'int', 'text'],
  lineitem: [
    'int',
    'int',
    'int',
    'int',
    'numeric',
    'numeric',
    'numeric',
    'numeric',
    'text',
    'text',
    'date',
    'date',
    'date',
    'text',
    'text',
    'text',
  ],
};

async function insertRows(client: pg.ClientBase, table: Table, rows: Row[]): Promise<void> {
  if (rows.length === 0) return;
  const types = COLUMN_TYPES[table];
  const columns = types.map((_, c) => rows.map((row) => row[c]));
  const params = types.map((t, c) => `$${c + 1}::${t}[]`).join(', ');
  await client.query(`INSERT INTO ${table} SELECT * FROM unnest(${params})`, columns);
}

const BATCH = 5000;

/** Creates the eight tables (with indexes) and loads them; returns the state the change workload continues from. */
export async function loadTpch(
  client: pg.ClientBase,
  { sf, seed = 1 }: { sf: ScaleFactor | number; seed?: number },
): Promise<TpchState> {
  await client.query(SCHEMA);
  const state: TpchState = {
    sf,
    seed,
    liveOrders: [],
    nextOrderIndex: 0,
    cycle: 0,
    pool: new TextPool(streamSeed(seed, 100)),
  };
  const pending = new Map<Table, Row[]>(TABLES.map((t) => [t, []]));
  const flush = async (table: Table, force = false) => {
    const rows = pending.get(table) ?? [];
    if (rows.length >= BATCH || (force && rows.length > 0)) {
      await insertRows(client, table, rows);
      pending.set(table, []);
    }
  };
  for (const [table, row] of dimensionRows(state)) {
    pending.get(table)?.push(row);
    await flush(table);
  }
  const ro = new Prng(streamSeed(seed, 5));
  const orders = cardinalities(sf).orders;
  for (; state.nextOrderIndex < orders; state.nextOrderIndex++) {
    const order = makeOrder(state, ro, state.nextOrderIndex);
    state.liveOrders.push(order.row[0] as number);
    pending.get('orders')?.push(order.row);
    pending.get('lineitem')?.push(...order.lines);
    await flush('orders');
    await flush('lineitem');
  }
  for (const table of TABLES) await flush(table, true);
  await client.query(INDEXES);
  await client.query(`ANALYZE ${TABLES.join(', ')}`);
  return state;
}

/** `fraction` of `rows`, at least one: the rows a change touches in a table of that size. */
function share(rows: number, fraction: number): number {
  return Math.max(1, Math.round(rows * fraction));
}

/** Rows each refresh function touches: SF × 1500 × `fraction` / 0.001 orders (the spec's RF size is 0.1%). */
function changeSize(state: TpchState, fraction: number): number {
  return share(cardinalities(state.sf).orders, fraction);
}

/** RF1: new orders with their lineitems, keys above every existing one. Returns the orders inserted. */
export async function rf1(client: pg.ClientBase, state: TpchState, fraction = 0.001): Promise<number> {
  const r = new Prng(streamSeed(state.seed, 1000 + state.cycle));
  const count = changeSize(state, fraction);
  const orders: Row[] = [];
  const lines: Row[] = [];
  for (let i = 0; i < count; i++) {
    const order = makeOrder(state, r, state.nextOrderIndex++);
    state.liveOrders.push(order.row[0] as number);
    orders.push(order.row);
    lines.push(...order.lines);
  }
  await client.query('BEGIN');
  await insertRows(client, 'orders', orders);
  await insertRows(client, 'lineitem', lines);
  await client.query('COMMIT');
  return count;
}

/** RF2: deletes the oldest-keyed orders and their lineitems. Returns the orders deleted. */
export async function rf2(client: pg.ClientBase, state: TpchState, fraction = 0.001): Promise<number> {
  const keys = state.liveOrders.splice(0, Math.min(changeSize(state, fraction), state.liveOrders.length));
  await client.query('BEGIN');
  await client.query('DELETE FROM lineitem WHERE l_orderkey = ANY($1::int[])', [keys]);
  await client.query('DELETE FROM orders WHERE o_orderkey = ANY($1::int[])', [keys]);
  await client.query('COMMIT');
  return keys.length;
}

/**
 * Key-preserving updates spread over the fact and dimension tables: lineitem prices, discounts
 * and return flags (moving rows between Q1 groups), order priorities and comments (Q4, Q12, Q13),
 * customer balances and segments, supply costs, supplier balances and part sizes.
 */
export async function updates(client: pg.ClientBase, state: TpchState, fraction = 0.001): Promise<void> {
  const r = new Prng(streamSeed(state.seed, 2000 + state.cycle));
  const n = cardinalities(state.sf);
  const sample = <T>(count: number, draw: () => T) => [...new Set(Array.from({ length: count }, draw))];
  const live = state.liveOrders;
  const orderKeys = sample(changeSize(state, fraction), () => live[r.int(0, live.length - 1)] as number);
  const discounts = orderKeys.map(() => money(r.int(0, 10)));
  const quantities = orderKeys.map(() => r.int(1, 50));
  const priorities = orderKeys.map(() => r.pick(PRIORITIES));
  const comments = orderKeys.map((_, i) =>
    i % 4 === 0 ? `special ${state.pool.comment(r, 5, 30)} requests` : state.pool.comment(r, 19, 78),
  );
  // Each table's share of its own rows: sized by the orders, the dimension updates changed 78%
  // of the suppliers, 10% of the customers and 7.5% of the parts per cycle at SF 0.1 and 1%.
  const customers = sample(share(n.customers, fraction), () => r.int(1, n.customers));
  const balances = customers.map(() => money(r.int(-99_999, 999_999)));
  const segments = customers.map(() => r.pick(SEGMENTS));
  const parts = sample(share(n.parts, fraction), () => r.int(1, n.parts));
  const costs = parts.map(() => money(r.int(100, 100_000)));
  const sizes = parts.map(() => r.int(1, 50));
  const suppliers = sample(share(n.suppliers, fraction), () => r.int(1, n.suppliers));
  const supplierBalances = suppliers.map(() => money(r.int(-99_999, 999_999)));
  await client.query('BEGIN');
  await client.query(
    `UPDATE lineitem l SET l_discount = u.d, l_quantity = u.q,
            l_extendedprice = u.q * p.p_retailprice,
            l_returnflag = CASE l.l_returnflag WHEN 'R' THEN 'A' WHEN 'A' THEN 'R' ELSE 'N' END
       FROM unnest($1::int[], $2::numeric[], $3::int[]) u(k, d, q), part p
      WHERE l.l_orderkey = u.k AND p.p_partkey = l.l_partkey AND l.l_linenumber % 2 = 1`,
    [orderKeys, discounts, quantities],
  );
  await client.query(
    `UPDATE orders o SET o_orderpriority = u.p, o_comment = u.c
       FROM unnest($1::int[], $2::text[], $3::text[]) u(k, p, c) WHERE o.o_orderkey = u.k`,
    [orderKeys, priorities, comments],
  );
  await client.query(
    `UPDATE customer c SET c_acctbal = u.b, c_mktsegment = u.s
       FROM unnest($1::int[], $2::numeric[], $3::text[]) u(k, b, s) WHERE c.c_custkey = u.k`,
    [customers, balances, segments],
  );
  await client.query(
    `UPDATE partsupp ps SET ps_supplycost = u.c, ps_availqty = ps.ps_availqty % 9999 + 1
       FROM unnest($1::int[], $2::numeric[]) u(k, c) WHERE ps.ps_partkey = u.k`,
    [parts, costs],
  );
  await client.query(
    'UPDATE part p SET p_size = u.s FROM unnest($1::int[], $2::int[]) u(k, s) WHERE p.p_partkey = u.k',
    [parts, sizes],
  );
  await client.query(
    'UPDATE supplier s SET s_acctbal = u.b FROM unnest($1::int[], $2::numeric[]) u(k, b) WHERE s.s_suppkey = u.k',
    [suppliers, supplierBalances],
  );
  await client.query('COMMIT');
}

/** One change cycle: RF1, RF2, then updates, each committed on its own. */
export async function changeCycle(client: pg.ClientBase, state: TpchState, fraction = 0.001): Promise<void> {
  await rf1(client, state, fraction);
  await rf2(client, state, fraction);
  await updates(client, state, fraction);
  state.cycle++;
}
