// A deterministic Nexmark generator (after Apache Beam's NexmarkUtils/GeneratorConfig and Flink's
// nexmark): one event stream of persons, auctions and bids in proportions 1:3:46, hot sellers,
// bidders and auctions, and a change workload of new events, updates and deletes, all by seed.
import type pg from 'pg';
import { ident } from '../../shared/pg/quote.js';
import { Prng } from '../tpch/generate.js';

/**
 * Nexmark's three streams as tables. Bids carry their event number as key: Nexmark events have
 * none, but a key lets updates and deletes address one bid.
 */
export const SCHEMA = `
CREATE TABLE person (id bigint PRIMARY KEY, name varchar NOT NULL, email_address varchar NOT NULL,
  credit_card varchar NOT NULL, city varchar NOT NULL, state varchar NOT NULL, date_time timestamp NOT NULL,
  extra varchar NOT NULL);
CREATE TABLE auction (id bigint PRIMARY KEY, item_name varchar NOT NULL, description varchar NOT NULL,
  initial_bid bigint NOT NULL, reserve bigint NOT NULL, date_time timestamp NOT NULL, expires timestamp NOT NULL,
  seller bigint NOT NULL, category bigint NOT NULL, extra varchar NOT NULL);
CREATE TABLE bid (id bigint PRIMARY KEY, auction bigint NOT NULL, bidder bigint NOT NULL, price bigint NOT NULL,
  channel varchar NOT NULL, url varchar NOT NULL, date_time timestamp NOT NULL, extra varchar NOT NULL);
CREATE TABLE side_input (key bigint PRIMARY KEY, value varchar NOT NULL);
CREATE INDEX ON auction (seller);
CREATE INDEX ON bid (auction);
CREATE INDEX ON bid (bidder);
`;

// Beam's constants (NexmarkUtils, GeneratorConfig).
const PERSON_PROPORTION = 1;
const AUCTION_PROPORTION = 3;
const TOTAL_PROPORTION = 50;
const FIRST_PERSON_ID = 1000;
const FIRST_AUCTION_ID = 1000;
const FIRST_CATEGORY_ID = 10;
const NUM_CATEGORIES = 5;
const HOT_AUCTION_RATIO = 100;
const HOT_BIDDER_RATIO = 100;
const HOT_SELLER_RATIO = 100;
const NUM_IN_FLIGHT_AUCTIONS = 100;
const NUM_ACTIVE_PEOPLE = 1000;
const AUCTION_ID_LEAD = 10;
const PERSON_ID_LEAD = 10;
const HOT_AUCTIONS = 2;
const HOT_BIDDERS = 4;
const HOT_SELLERS = 4;
const HOT_CHANNELS_RATIO = 2;
const CHANNELS_NUMBER = 10_000;
const SIDE_INPUT_ROWS = 10_000;
const BASE_TIME = Date.parse('2015-07-15T00:00:00Z');
/** Mean auction length in events, so that `expires` spans about 20 s of event time at 100 events/s. */
const AUCTION_LENGTH_EVENTS = 2000;
const EXTRA_BYTES = { person: 200, auction: 500, bid: 100 } as const;

const FIRST_NAMES = [
  'Peter',
  'Paul',
  'Luke',
  'John',
  'Saul',
  'Vicky',
  'Kate',
  'Julie',
  'Sarah',
  'Deiter',
  'Walter',
];
const LAST_NAMES = ['Shultz', 'Abrams', 'Spencer', 'White', 'Bartels', 'Walton', 'Smith', 'Jones', 'Noris'];
const US_STATES = ['AZ', 'CA', 'ID', 'OR', 'WA', 'WY'];
const US_CITIES = [
  'Phoenix',
  'Los Angeles',
  'San Francisco',
  'Boise',
  'Portland',
  'Bend',
  'Redmond',
  'Seattle',
  'Kent',
  'Cheyenne',
];
const HOT_CHANNELS = ['Google', 'Facebook', 'Baidu', 'Apple'];

type Row = (string | number)[];
type Table = 'person' | 'auction' | 'bid';

const COLUMN_TYPES: Record<Table, string[]> = {
  person: ['bigint', 'text', 'text', 'text', 'text', 'text', 'timestamp', 'text'],
  auction: [
    'bigint',
    'text',
    'text',
    'bigint',
    'bigint',
    'timestamp',
    'timestamp',
    'bigint',
    'bigint',
    'text',
  ],
  bid: ['bigint', 'bigint', 'bigint', 'bigint', 'text', 'text', 'timestamp', 'text'],
};

export interface NexmarkOptions {
  /** Events of the initial load (persons, auctions and bids together). */
  events: number;
  seed?: number;
  /** Event-time rate: 100 events/s puts ~1,000 events in a 10 s window even at small sizes. */
  eventsPerSecond?: number;
}

/** Where the event stream continues; the change workload is deterministic given it. */
export interface NexmarkState {
  seed: number;
  eventsPerSecond: number;
  nextEvent: number;
  batch: number;
  /** The URLs of the hot channels, drawn once like Beam's HOT_URLS. */
  hotUrls: string[];
}

// The number of persons (auctions) among events 0..n-1 of the stream.
const personsBefore = (n: number) =>
  Math.floor(n / TOTAL_PROPORTION) * PERSON_PROPORTION + Math.min(n % TOTAL_PROPORTION, PERSON_PROPORTION);
const auctionsBefore = (n: number) =>
  Math.floor(n / TOTAL_PROPORTION) * AUCTION_PROPORTION +
  Math.min(Math.max((n % TOTAL_PROPORTION) - PERSON_PROPORTION, 0), AUCTION_PROPORTION);

function text(r: Prng, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCharCode(97 + r.int(0, 25));
  return s;
}

/** Beam's nextExtra: random filler bringing a row near its average byte size. */
function extra(r: Prng, currentSize: number, desired: number): string {
  if (currentSize > desired) return '';
  const delta = Math.max(0, Math.round((desired - currentSize) * (0.8 + 0.4 * r.next())));
  return text(r, delta);
}

/** Beam's nextPrice: log-uniform cents between 1 and 10^8. */
const price = (r: Prng) => Math.round(10 ** (r.next() * 6) * 100);

const timestamp = (state: NexmarkState, event: number) =>
  new Date(BASE_TIME + Math.floor((event * 1000) / state.eventsPerSecond))
    .toISOString()
    .replace('T', ' ')
    .replace('Z', '');

/** A random person among the recently active ones, or slightly ahead of the newest (Beam's lead). */
function recentPerson(r: Prng, event: number): number {
  const people = personsBefore(event) || 1;
  const active = Math.min(people, NUM_ACTIVE_PEOPLE);
  return people - active + r.int(0, active + PERSON_ID_LEAD - 1);
}

function baseUrl(r: Prng): string {
  return `https://www.nexmark.com/${text(r, 5)}/${text(r, 5)}/${text(r, 5)}/item.htm?query=1`;
}

function personRow(state: NexmarkState, r: Prng, event: number): Row {
  const id = FIRST_PERSON_ID + personsBefore(event);
  const name = `${r.pick(FIRST_NAMES)} ${r.pick(LAST_NAMES)}`;
  const email = `${text(r, 7)}@${text(r, 5)}.com`;
  const card = Array.from({ length: 4 }, () => String(r.int(0, 9999)).padStart(4, '0')).join(' ');
  const city = r.pick(US_CITIES);
  const usState = r.pick(US_STATES);
  const size = 8 + name.length + email.length + card.length + city.length + usState.length;
  return [id, name, email, card, city, usState, timestamp(state, event), extra(r, size, EXTRA_BYTES.person)];
}

function auctionRow(state: NexmarkState, r: Prng, event: number): Row {
  const id = FIRST_AUCTION_ID + auctionsBefore(event);
  const lastPerson = Math.max(personsBefore(event) - 1, 0);
  const seller =
    r.int(0, HOT_SELLERS - 1) > 0
      ? Math.floor(lastPerson / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
      : recentPerson(r, event);
  const initialBid = price(r);
  const itemName = text(r, 20);
  const description = text(r, 100);
  const length = r.int(1, 2 * AUCTION_LENGTH_EVENTS);
  return [
    id,
    itemName,
    description,
    initialBid,
    initialBid + price(r),
    timestamp(state, event),
    timestamp(state, event + length),
    FIRST_PERSON_ID + seller,
    FIRST_CATEGORY_ID + r.int(0, NUM_CATEGORIES - 1),
    extra(r, 8 + itemName.length + description.length + 40, EXTRA_BYTES.auction),
  ];
}

function bidRow(state: NexmarkState, r: Prng, event: number): Row {
  const lastAuction = Math.max(auctionsBefore(event) - 1, 0);
  let auction: number;
  if (r.int(0, HOT_AUCTIONS - 1) > 0) {
    auction = Math.floor(lastAuction / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO;
  } else {
    const min = Math.max(lastAuction - NUM_IN_FLIGHT_AUCTIONS, 0);
    auction = min + r.int(0, lastAuction - min + AUCTION_ID_LEAD);
  }
  const lastPerson = Math.max(personsBefore(event) - 1, 0);
  const bidder =
    r.int(0, HOT_BIDDERS - 1) > 0
      ? Math.floor(lastPerson / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
      : recentPerson(r, event);
  let channel: string;
  let url: string;
  if (r.int(0, HOT_CHANNELS_RATIO - 1) > 0) {
    const i = r.int(0, HOT_CHANNELS.length - 1);
    channel = HOT_CHANNELS[i] as string;
    url = state.hotUrls[i] as string;
  } else {
    const n = r.int(0, CHANNELS_NUMBER - 1);
    channel = `channel-${n}`;
    url = `${baseUrl(r)}&channel_id=${n}`;
  }
  return [
    event,
    FIRST_AUCTION_ID + auction,
    FIRST_PERSON_ID + bidder,
    price(r),
    channel,
    url,
    timestamp(state, event),
    extra(r, 32 + channel.length + url.length, EXTRA_BYTES.bid),
  ];
}

/** The next `count` events of the stream, as rows per table. */
function events(state: NexmarkState, r: Prng, count: number): Record<Table, Row[]> {
  const rows: Record<Table, Row[]> = { person: [], auction: [], bid: [] };
  for (const end = state.nextEvent + count; state.nextEvent < end; state.nextEvent++) {
    const event = state.nextEvent;
    const offset = event % TOTAL_PROPORTION;
    if (offset < PERSON_PROPORTION) rows.person.push(personRow(state, r, event));
    else if (offset < PERSON_PROPORTION + AUCTION_PROPORTION) rows.auction.push(auctionRow(state, r, event));
    else rows.bid.push(bidRow(state, r, event));
  }
  return rows;
}

// Rows per INSERT … unnest: large enough to amortise the round trip, small enough for one message.
const BATCH = 5000;

async function insertRows(client: pg.ClientBase, table: Table, rows: Row[]): Promise<void> {
  const types = COLUMN_TYPES[table];
  for (let start = 0; start < rows.length; start += BATCH) {
    const chunk = rows.slice(start, start + BATCH);
    const columns = types.map((_, c) => chunk.map((row) => row[c]));
    const params = types.map((t, c) => `$${c + 1}::${t}[]`).join(', ');
    await client.query(`INSERT INTO ${ident(table)} SELECT * FROM unnest(${params})`, columns);
  }
}

// Distinct streams per purpose, so that changing one workload leaves the others' draws alone.
const streamSeed = (seed: number, stream: number) => (seed * 7919 + stream * 104_729) >>> 0;

/** Creates the tables and loads the first `events` events; returns where the stream continues. */
export async function loadNexmark(client: pg.ClientBase, options: NexmarkOptions): Promise<NexmarkState> {
  const seed = options.seed ?? 1;
  const urls = new Prng(streamSeed(seed, 1));
  const state: NexmarkState = {
    seed,
    eventsPerSecond: options.eventsPerSecond ?? 100,
    nextEvent: 0,
    batch: 0,
    hotUrls: HOT_CHANNELS.map(() => baseUrl(urls)),
  };
  await client.query(SCHEMA);
  const rows = events(state, new Prng(streamSeed(seed, 2)), options.events);
  for (const table of ['person', 'auction', 'bid'] as const) await insertRows(client, table, rows[table]);
  await client.query(
    `INSERT INTO side_input SELECT g, 'value-' || g FROM generate_series(0, ${SIDE_INPUT_ROWS - 1}) g`,
  );
  await client.query('ANALYZE person, auction, bid, side_input');
  return state;
}

/**
 * One batch of sustained DML, each part its own transaction: `count` new events; bids raised
 * (a tenth of `count`), auctions re-categorised and extended, persons moved; the oldest bids
 * and a few auctions (with their bids) and persons deleted.
 */
export async function changeBatch(client: pg.ClientBase, state: NexmarkState, count: number): Promise<void> {
  const r = new Prng(streamSeed(state.seed, 1000 + state.batch));
  const rows = events(state, r, count);
  const touched = Math.max(1, Math.round(count / 10));
  const sample = (count: number, lo: number, hi: number) => [
    ...new Set(Array.from({ length: count }, () => r.int(lo, hi))),
  ];
  const lastEvent = state.nextEvent - 1;
  const bids = sample(touched, 0, lastEvent);
  const auctions = sample(
    Math.ceil(touched / 10),
    FIRST_AUCTION_ID,
    FIRST_AUCTION_ID + auctionsBefore(lastEvent),
  );
  const persons = sample(
    Math.ceil(touched / 30),
    FIRST_PERSON_ID,
    FIRST_PERSON_ID + personsBefore(lastEvent),
  );
  const states = persons.map(() => r.pick(US_STATES));
  const cities = persons.map(() => r.pick(US_CITIES));
  const closed = sample(
    Math.ceil(touched / 50),
    FIRST_AUCTION_ID,
    FIRST_AUCTION_ID + auctionsBefore(lastEvent),
  );
  const gone = sample(Math.ceil(touched / 100), FIRST_PERSON_ID, FIRST_PERSON_ID + personsBefore(lastEvent));

  await client.query('BEGIN');
  for (const table of ['person', 'auction', 'bid'] as const) await insertRows(client, table, rows[table]);
  await client.query('COMMIT');

  await client.query('BEGIN');
  await client.query('UPDATE bid SET price = price + price / 10 + 1 WHERE id = ANY($1::bigint[])', [bids]);
  await client.query(
    `UPDATE auction SET category = ${FIRST_CATEGORY_ID} + (category - ${FIRST_CATEGORY_ID} + 1) % ${NUM_CATEGORIES},
            expires = expires + interval '5 seconds' WHERE id = ANY($1::bigint[])`,
    [auctions],
  );
  await client.query(
    `UPDATE person p SET state = u.s, city = u.c FROM unnest($1::bigint[], $2::text[], $3::text[]) u(k, s, c)
      WHERE p.id = u.k`,
    [persons, states, cities],
  );
  await client.query('COMMIT');

  await client.query('BEGIN');
  await client.query('DELETE FROM bid WHERE id IN (SELECT id FROM bid ORDER BY id LIMIT $1)', [touched]);
  await client.query('DELETE FROM bid WHERE auction = ANY($1::bigint[])', [closed]);
  await client.query('DELETE FROM auction WHERE id = ANY($1::bigint[])', [closed]);
  await client.query('DELETE FROM person WHERE id = ANY($1::bigint[])', [gone]);
  await client.query('COMMIT');
  state.batch++;
}
