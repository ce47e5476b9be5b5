// The Nexmark queries (Beam's q0–q9 and Flink's q10–q22) as stream-table defining queries over
// bench/nexmark/generate.ts's tables. A stream table has no windows of processing time and
// no watermarks, so event-time windows become a GROUP BY on the window's start
// (`date_bin`, a tumbling window); what else changed is in each query's `adapted`.

export interface NexmarkQuery {
  id: string;
  title: string;
  /** How the query differs from the Nexmark original, when it does. */
  adapted?: string;
  sql: string;
}

/** The start of the 10-second tumbling window holding `column` (Nexmark's default window). */
const window = (column: string) =>
  `date_bin(interval '10 seconds', ${column}, timestamp '2015-07-15 00:00:00')`;

// Bid and bidder counts by price rank, shared by q15, q16 and q17 (Flink's "rank1..3").
const RANK1 = 'price < 10000';
const RANK2 = 'price >= 10000 AND price < 1000000';
const RANK3 = 'price >= 1000000';

export const nexmarkQueries: readonly NexmarkQuery[] = [
  {
    id: 'nx_q0',
    title: 'pass-through',
    sql: 'SELECT auction, bidder, price, date_time, extra FROM bid',
  },
  {
    id: 'nx_q1',
    title: 'currency conversion',
    sql: 'SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid',
  },
  {
    id: 'nx_q2',
    title: 'selection',
    sql: 'SELECT auction, price FROM bid WHERE auction % 123 = 0',
  },
  {
    id: 'nx_q3',
    title: 'local item suggestion',
    sql: `SELECT p.name, p.city, p.state, a.id
FROM auction a JOIN person p ON a.seller = p.id
WHERE a.category = 10 AND (p.state = 'OR' OR p.state = 'ID' OR p.state = 'CA')`,
  },
  {
    id: 'nx_q4',
    title: 'average price per category',
    sql: `SELECT q.category, avg(q.final) AS avg_final
FROM (SELECT max(b.price) AS final, a.category
      FROM auction a JOIN bid b ON a.id = b.auction
      WHERE b.date_time BETWEEN a.date_time AND a.expires
      GROUP BY a.id, a.category) q
GROUP BY q.category`,
  },
  {
    id: 'nx_q5',
    title: 'hot items',
    adapted:
      '10 s tumbling windows instead of 10 s windows sliding by 2 s; the window start is an output column',
    sql: `SELECT ab.auction, ab.num, ab.window_start
FROM (SELECT auction, count(*) AS num, ${window('date_time')} AS window_start FROM bid
      GROUP BY auction, ${window('date_time')}) ab
JOIN (SELECT max(c.num) AS maxn, c.window_start
      FROM (SELECT count(*) AS num, ${window('date_time')} AS window_start FROM bid
            GROUP BY auction, ${window('date_time')}) c
      GROUP BY c.window_start) mb
  ON ab.window_start = mb.window_start AND ab.num >= mb.maxn`,
  },
  {
    id: 'nx_q6',
    title: 'average selling price by seller',
    adapted:
      "a seller's last 10 closed auctions ordered by expiry (Flink's text groups by a column it does not output)",
    sql: `SELECT q.seller, q.id AS auction,
  avg(q.final) OVER (PARTITION BY q.seller ORDER BY q.expires, q.id ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) AS avg_price
FROM (SELECT a.id, a.seller, a.expires, max(b.price) AS final
      FROM auction a JOIN bid b ON a.id = b.auction
      WHERE b.date_time BETWEEN a.date_time AND a.expires
      GROUP BY a.id, a.seller, a.expires) q`,
  },
  {
    id: 'nx_q7',
    title: 'highest bid',
    sql: `SELECT b.auction, b.price, b.bidder, b.date_time, b.extra
FROM bid b
JOIN (SELECT max(price) AS maxprice, ${window('date_time')} AS window_start FROM bid
      GROUP BY ${window('date_time')}) m
  ON b.price = m.maxprice AND ${window('b.date_time')} = m.window_start`,
  },
  {
    id: 'nx_q8',
    title: 'monitor new users',
    adapted: "Flink's GROUP BYs that only deduplicate are one DISTINCT",
    sql: `SELECT DISTINCT p.id, p.name, ${window('p.date_time')} AS starttime
FROM person p JOIN auction a
  ON p.id = a.seller AND ${window('p.date_time')} = ${window('a.date_time')}`,
  },
  {
    id: 'nx_q9',
    title: 'winning bids',
    adapted: 'ties on price go to the earlier bid, then the lower bid key, so the winner is deterministic',
    sql: `SELECT w.id, w.item_name, w.initial_bid, w.reserve, w.date_time, w.expires, w.seller, w.category,
  w.auction, w.bidder, w.price, w.bid_date_time
FROM (SELECT a.id, a.item_name, a.initial_bid, a.reserve, a.date_time, a.expires, a.seller, a.category,
        b.auction, b.bidder, b.price, b.date_time AS bid_date_time,
        row_number() OVER (PARTITION BY a.id ORDER BY b.price DESC, b.date_time, b.id) AS rownum
      FROM auction a JOIN bid b ON a.id = b.auction
      WHERE b.date_time BETWEEN a.date_time AND a.expires) w
WHERE w.rownum <= 1`,
  },
  {
    id: 'nx_q10',
    title: 'log to file system',
    adapted: 'the partition columns a file sink would write, without the sink',
    sql: `SELECT auction, bidder, price, date_time, extra,
  to_char(date_time, 'YYYY-MM-DD') AS dt, to_char(date_time, 'HH24:MI') AS hm
FROM bid`,
  },
  {
    id: 'nx_q11',
    title: 'user sessions',
    adapted: 'bids per bidder per 10 s tumbling window instead of per session (a 10 s gap)',
    sql: `SELECT bidder, count(*) AS bid_count, ${window('date_time')} AS window_start
FROM bid GROUP BY bidder, ${window('date_time')}`,
  },
  {
    id: 'nx_q13',
    title: 'bounded side input join',
    sql: `SELECT b.auction, b.bidder, b.price, b.date_time, s.value
FROM bid b JOIN side_input s ON b.auction % 10000 = s.key`,
  },
  {
    id: 'nx_q14',
    title: 'calculation',
    adapted: "the count_char UDF as length(extra) - length(replace(extra, 'c', ''))",
    sql: `SELECT auction, bidder, 0.908 * price AS price,
  CASE WHEN extract(hour FROM date_time) BETWEEN 8 AND 18 THEN 'dayTime'
       WHEN extract(hour FROM date_time) <= 6 OR extract(hour FROM date_time) >= 20 THEN 'nightTime'
       ELSE 'otherTime' END AS bid_time_type,
  date_time, extra, length(extra) - length(replace(extra, 'c', '')) AS c_counts
FROM bid
WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000`,
  },
  {
    id: 'nx_q15',
    title: 'bidding statistics report',
    sql: `SELECT to_char(date_time, 'YYYY-MM-DD') AS day,
  count(*) AS total_bids,
  count(*) FILTER (WHERE ${RANK1}) AS rank1_bids,
  count(*) FILTER (WHERE ${RANK2}) AS rank2_bids,
  count(*) FILTER (WHERE ${RANK3}) AS rank3_bids,
  count(DISTINCT bidder) AS total_bidders,
  count(DISTINCT bidder) FILTER (WHERE ${RANK1}) AS rank1_bidders,
  count(DISTINCT bidder) FILTER (WHERE ${RANK2}) AS rank2_bidders,
  count(DISTINCT bidder) FILTER (WHERE ${RANK3}) AS rank3_bidders,
  count(DISTINCT auction) AS total_auctions,
  count(DISTINCT auction) FILTER (WHERE ${RANK1}) AS rank1_auctions,
  count(DISTINCT auction) FILTER (WHERE ${RANK2}) AS rank2_auctions,
  count(DISTINCT auction) FILTER (WHERE ${RANK3}) AS rank3_auctions
FROM bid
GROUP BY to_char(date_time, 'YYYY-MM-DD')`,
  },
  {
    id: 'nx_q16',
    title: 'channel statistics report',
    sql: `SELECT channel, to_char(date_time, 'YYYY-MM-DD') AS day, max(to_char(date_time, 'HH24:MI')) AS minute,
  count(*) AS total_bids,
  count(*) FILTER (WHERE ${RANK1}) AS rank1_bids,
  count(*) FILTER (WHERE ${RANK2}) AS rank2_bids,
  count(*) FILTER (WHERE ${RANK3}) AS rank3_bids,
  count(DISTINCT bidder) AS total_bidders,
  count(DISTINCT auction) AS total_auctions
FROM bid
GROUP BY channel, to_char(date_time, 'YYYY-MM-DD')`,
  },
  {
    id: 'nx_q17',
    title: 'auction statistics report',
    sql: `SELECT auction, to_char(date_time, 'YYYY-MM-DD') AS day,
  count(*) AS total_bids,
  count(*) FILTER (WHERE ${RANK1}) AS rank1_bids,
  count(*) FILTER (WHERE ${RANK2}) AS rank2_bids,
  count(*) FILTER (WHERE ${RANK3}) AS rank3_bids,
  min(price) AS min_price, max(price) AS max_price, avg(price) AS avg_price, sum(price) AS sum_price
FROM bid
GROUP BY auction, to_char(date_time, 'YYYY-MM-DD')`,
  },
  {
    id: 'nx_q18',
    title: 'find last bid',
    adapted: 'ties on time go to the higher bid key, so the last bid is deterministic',
    sql: `SELECT auction, bidder, price, channel, url, date_time, extra
FROM (SELECT *, row_number() OVER (PARTITION BY bidder, auction ORDER BY date_time DESC, id DESC) AS rank_number
      FROM bid) b
WHERE rank_number <= 1`,
  },
  {
    id: 'nx_q19',
    title: 'auction top-10 price',
    adapted: 'ties on price go to the lower bid key, so the top 10 are deterministic',
    sql: `SELECT auction, bidder, price, channel, url, date_time, extra, rank_number
FROM (SELECT *, row_number() OVER (PARTITION BY auction ORDER BY price DESC, id) AS rank_number FROM bid) b
WHERE rank_number <= 10`,
  },
  {
    id: 'nx_q20',
    title: 'expand bid with auction',
    sql: `SELECT b.auction, b.bidder, b.price, b.channel, b.url, b.date_time AS bid_date_time,
  a.item_name, a.description, a.initial_bid, a.reserve, a.date_time AS auction_date_time, a.expires, a.seller,
  a.category
FROM bid b JOIN auction a ON b.auction = a.id
WHERE a.category = 10`,
  },
  {
    id: 'nx_q21',
    title: 'add channel id',
    adapted: "REGEXP_EXTRACT as substring(url FROM '…')",
    sql: `SELECT auction, bidder, price, channel,
  CASE WHEN lower(channel) = 'apple' THEN '0'
       WHEN lower(channel) = 'google' THEN '1'
       WHEN lower(channel) = 'facebook' THEN '2'
       WHEN lower(channel) = 'baidu' THEN '3'
       ELSE substring(url FROM '(?:&|^)channel_id=([^&]*)') END AS channel_id
FROM bid
WHERE substring(url FROM '(?:&|^)channel_id=([^&]*)') IS NOT NULL
   OR lower(channel) IN ('apple', 'google', 'facebook', 'baidu')`,
  },
  {
    id: 'nx_q22',
    title: 'get URL directories',
    sql: `SELECT auction, bidder, price, channel,
  split_part(url, '/', 4) AS dir1, split_part(url, '/', 5) AS dir2, split_part(url, '/', 6) AS dir3
FROM bid`,
  },
];
