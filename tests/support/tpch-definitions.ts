// The 22 TPC-H queries of bench/tpch/queries.ts (SF 0.01) as create_stream_table stores them:
// pg_get_viewdef of a view holding each, on PostgreSQL 15 under search_path pg_catalog, pg_temp
// (pgtrickle._probe_query). Compiler unit tests read these, as the compiler does, without a server.

export const TPCH_DEFINITIONS: Readonly<Record<string, string>> = {
  q01: ` SELECT lineitem.l_returnflag,
    lineitem.l_linestatus,
    sum(lineitem.l_quantity) AS sum_qty,
    sum(lineitem.l_extendedprice) AS sum_base_price,
    sum((lineitem.l_extendedprice * ((1)::numeric - lineitem.l_discount))) AS sum_disc_price,
    sum(((lineitem.l_extendedprice * ((1)::numeric - lineitem.l_discount)) * ((1)::numeric + lineitem.l_tax))) AS sum_charge,
    avg(lineitem.l_quantity) AS avg_qty,
    avg(lineitem.l_extendedprice) AS avg_price,
    avg(lineitem.l_discount) AS avg_disc,
    count(*) AS count_order
   FROM public.lineitem
  WHERE (lineitem.l_shipdate <= ('1998-12-01'::date - '90 days'::interval))
  GROUP BY lineitem.l_returnflag, lineitem.l_linestatus`,
  q02: ` SELECT supplier.s_acctbal,
    supplier.s_name,
    nation.n_name,
    part.p_partkey,
    part.p_mfgr,
    supplier.s_address,
    supplier.s_phone,
    supplier.s_comment
   FROM public.part,
    public.supplier,
    public.partsupp,
    public.nation,
    public.region
  WHERE ((part.p_partkey = partsupp.ps_partkey) AND (supplier.s_suppkey = partsupp.ps_suppkey) AND (part.p_size = 15) AND ((part.p_type)::text ~~ '%BRASS'::text) AND (supplier.s_nationkey = nation.n_nationkey) AND (nation.n_regionkey = region.r_regionkey) AND (region.r_name = 'EUROPE'::bpchar) AND (partsupp.ps_supplycost = ( SELECT min(partsupp_1.ps_supplycost) AS min
           FROM public.partsupp partsupp_1,
            public.supplier supplier_1,
            public.nation nation_1,
            public.region region_1
          WHERE ((part.p_partkey = partsupp_1.ps_partkey) AND (supplier_1.s_suppkey = partsupp_1.ps_suppkey) AND (supplier_1.s_nationkey = nation_1.n_nationkey) AND (nation_1.n_regionkey = region_1.r_regionkey) AND (region_1.r_name = 'EUROPE'::bpchar)))))`,
  q03: ` SELECT lineitem.l_orderkey,
    sum((lineitem.l_extendedprice * ((1)::numeric - lineitem.l_discount))) AS revenue,
    orders.o_orderdate,
    orders.o_shippriority
   FROM public.customer,
    public.orders,
    public.lineitem
  WHERE ((customer.c_mktsegment = 'BUILDING'::bpchar) AND (customer.c_custkey = orders.o_custkey) AND (lineitem.l_orderkey = orders.o_orderkey) AND (orders.o_orderdate < '1995-03-15'::date) AND (lineitem.l_shipdate > '1995-03-15'::date))
  GROUP BY lineitem.l_orderkey, orders.o_orderdate, orders.o_shippriority`,
  q04: ` SELECT orders.o_orderpriority,
    count(*) AS order_count
   FROM public.orders
  WHERE ((orders.o_orderdate >= '1993-07-01'::date) AND (orders.o_orderdate < ('1993-07-01'::date + '3 mons'::interval)) AND (EXISTS ( SELECT lineitem.l_orderkey,
            lineitem.l_partkey,
            lineitem.l_suppkey,
            lineitem.l_linenumber,
            lineitem.l_quantity,
            lineitem.l_extendedprice,
            lineitem.l_discount,
            lineitem.l_tax,
            lineitem.l_returnflag,
            lineitem.l_linestatus,
            lineitem.l_shipdate,
            lineitem.l_commitdate,
            lineitem.l_receiptdate,
            lineitem.l_shipinstruct,
            lineitem.l_shipmode,
            lineitem.l_comment
           FROM public.lineitem
          WHERE ((lineitem.l_orderkey = orders.o_orderkey) AND (lineitem.l_commitdate < lineitem.l_receiptdate)))))
  GROUP BY orders.o_orderpriority`,
  q05: ` SELECT nation.n_name,
    sum((lineitem.l_extendedprice * ((1)::numeric - lineitem.l_discount))) AS revenue
   FROM public.customer,
    public.orders,
    public.lineitem,
    public.supplier,
    public.nation,
    public.region
  WHERE ((customer.c_custkey = orders.o_custkey) AND (lineitem.l_orderkey = orders.o_orderkey) AND (lineitem.l_suppkey = supplier.s_suppkey) AND (customer.c_nationkey = supplier.s_nationkey) AND (supplier.s_nationkey = nation.n_nationkey) AND (nation.n_regionkey = region.r_regionkey) AND (region.r_name = 'ASIA'::bpchar) AND (orders.o_orderdate >= '1994-01-01'::date) AND (orders.o_orderdate < ('1994-01-01'::date + '1 year'::interval)))
  GROUP BY nation.n_name`,
  q06: ` SELECT sum((lineitem.l_extendedprice * lineitem.l_discount)) AS revenue
   FROM public.lineitem
  WHERE ((lineitem.l_shipdate >= '1994-01-01'::date) AND (lineitem.l_shipdate < ('1994-01-01'::date + '1 year'::interval)) AND ((lineitem.l_discount >= (0.06 - 0.01)) AND (lineitem.l_discount <= (0.06 + 0.01))) AND (lineitem.l_quantity < (24)::numeric))`,
  q07: ` SELECT shipping.supp_nation,
    shipping.cust_nation,
    shipping.l_year,
    sum(shipping.volume) AS revenue
   FROM ( SELECT n1.n_name AS supp_nation,
            n2.n_name AS cust_nation,
            EXTRACT(year FROM lineitem.l_shipdate) AS l_year,
            (lineitem.l_extendedprice * ((1)::numeric - lineitem.l_discount)) AS volume
           FROM public.supplier,
            public.lineitem,
            public.orders,
            public.customer,
            public.nation n1,
            public.nation n2
          WHERE ((supplier.s_suppkey = lineitem.l_suppkey) AND (orders.o_orderkey = lineitem.l_orderkey) AND (customer.c_custkey = orders.o_custkey) AND (supplier.s_nationkey = n1.n_nationkey) AND (customer.c_nationkey = n2.n_nationkey) AND (((n1.n_name = 'FRANCE'::bpchar) AND (n2.n_name = 'GERMANY'::bpchar)) OR ((n1.n_name = 'GERMANY'::bpchar) AND (n2.n_name = 'FRANCE'::bpchar))) AND ((lineitem.l_shipdate >= '1995-01-01'::date) AND (lineitem.l_shipdate <= '1996-12-31'::date)))) shipping
  GROUP BY shipping.supp_nation, shipping.cust_nation, shipping.l_year`,
  q08: ` SELECT all_nations.o_year,
    (sum(
        CASE
            WHEN (all_nations.nation = 'BRAZIL'::bpchar) THEN all_nations.volume
            ELSE (0)::numeric
        END) / sum(all_nations.volume)) AS mkt_share
   FROM ( SELECT EXTRACT(year FROM orders.o_orderdate) AS o_year,
            (lineitem.l_extendedprice * ((1)::numeric - lineitem.l_discount)) AS volume,
            n2.n_name AS nation
           FROM public.part,
            public.supplier,
            public.lineitem,
            public.orders,
            public.customer,
            public.nation n1,
            public.nation n2,
            public.region
          WHERE ((part.p_partkey = lineitem.l_partkey) AND (supplier.s_suppkey = lineitem.l_suppkey) AND (lineitem.l_orderkey = orders.o_orderkey) AND (orders.o_custkey = customer.c_custkey) AND (customer.c_nationkey = n1.n_nationkey) AND (n1.n_regionkey = region.r_regionkey) AND (region.r_name = 'AMERICA'::bpchar) AND (supplier.s_nationkey = n2.n_nationkey) AND ((orders.o_orderdate >= '1995-01-01'::date) AND (orders.o_orderdate <= '1996-12-31'::date)) AND ((part.p_type)::text = 'ECONOMY ANODIZED STEEL'::text))) all_nations
  GROUP BY all_nations.o_year`,
  q09: ` SELECT profit.nation,
    profit.o_year,
    sum(profit.amount) AS sum_profit
   FROM ( SELECT nation.n_name AS nation,
            EXTRACT(year FROM orders.o_orderdate) AS o_year,
            ((lineitem.l_extendedprice * ((1)::numeric - lineitem.l_discount)) - (partsupp.ps_supplycost * lineitem.l_quantity)) AS amount
           FROM public.part,
            public.supplier,
            public.lineitem,
            public.partsupp,
            public.orders,
            public.nation
          WHERE ((supplier.s_suppkey = lineitem.l_suppkey) AND (partsupp.ps_suppkey = lineitem.l_suppkey) AND (partsupp.ps_partkey = lineitem.l_partkey) AND (part.p_partkey = lineitem.l_partkey) AND (orders.o_orderkey = lineitem.l_orderkey) AND (supplier.s_nationkey = nation.n_nationkey) AND ((part.p_name)::text ~~ '%green%'::text))) profit
  GROUP BY profit.nation, profit.o_year`,
  q10: ` SELECT customer.c_custkey,
    customer.c_name,
    sum((lineitem.l_extendedprice * ((1)::numeric - lineitem.l_discount))) AS revenue,
    customer.c_acctbal,
    nation.n_name,
    customer.c_address,
    customer.c_phone,
    customer.c_comment
   FROM public.customer,
    public.orders,
    public.lineitem,
    public.nation
  WHERE ((customer.c_custkey = orders.o_custkey) AND (lineitem.l_orderkey = orders.o_orderkey) AND (orders.o_orderdate >= '1993-10-01'::date) AND (orders.o_orderdate < ('1993-10-01'::date + '3 mons'::interval)) AND (lineitem.l_returnflag = 'R'::bpchar) AND (customer.c_nationkey = nation.n_nationkey))
  GROUP BY customer.c_custkey, customer.c_name, customer.c_acctbal, customer.c_phone, nation.n_name, customer.c_address, customer.c_comment`,
  q11: ` SELECT partsupp.ps_partkey,
    sum((partsupp.ps_supplycost * (partsupp.ps_availqty)::numeric)) AS value
   FROM public.partsupp,
    public.supplier,
    public.nation
  WHERE ((partsupp.ps_suppkey = supplier.s_suppkey) AND (supplier.s_nationkey = nation.n_nationkey) AND (nation.n_name = 'GERMANY'::bpchar))
  GROUP BY partsupp.ps_partkey
 HAVING (sum((partsupp.ps_supplycost * (partsupp.ps_availqty)::numeric)) > ( SELECT (sum((partsupp_1.ps_supplycost * (partsupp_1.ps_availqty)::numeric)) * 0.01)
           FROM public.partsupp partsupp_1,
            public.supplier supplier_1,
            public.nation nation_1
          WHERE ((partsupp_1.ps_suppkey = supplier_1.s_suppkey) AND (supplier_1.s_nationkey = nation_1.n_nationkey) AND (nation_1.n_name = 'GERMANY'::bpchar))))`,
  q12: ` SELECT lineitem.l_shipmode,
    sum(
        CASE
            WHEN ((orders.o_orderpriority = '1-URGENT'::bpchar) OR (orders.o_orderpriority = '2-HIGH'::bpchar)) THEN 1
            ELSE 0
        END) AS high_line_count,
    sum(
        CASE
            WHEN ((orders.o_orderpriority <> '1-URGENT'::bpchar) AND (orders.o_orderpriority <> '2-HIGH'::bpchar)) THEN 1
            ELSE 0
        END) AS low_line_count
   FROM public.orders,
    public.lineitem
  WHERE ((orders.o_orderkey = lineitem.l_orderkey) AND (lineitem.l_shipmode = ANY (ARRAY['MAIL'::bpchar, 'SHIP'::bpchar])) AND (lineitem.l_commitdate < lineitem.l_receiptdate) AND (lineitem.l_shipdate < lineitem.l_commitdate) AND (lineitem.l_receiptdate >= '1994-01-01'::date) AND (lineitem.l_receiptdate < ('1994-01-01'::date + '1 year'::interval)))
  GROUP BY lineitem.l_shipmode`,
  q13: ` SELECT c_orders.c_count,
    count(*) AS custdist
   FROM ( SELECT customer.c_custkey,
            count(orders.o_orderkey) AS c_count
           FROM (public.customer
             LEFT JOIN public.orders ON (((customer.c_custkey = orders.o_custkey) AND ((orders.o_comment)::text !~~ '%special%requests%'::text))))
          GROUP BY customer.c_custkey) c_orders
  GROUP BY c_orders.c_count`,
  q14: ` SELECT ((100.00 * sum(
        CASE
            WHEN ((part.p_type)::text ~~ 'PROMO%'::text) THEN (lineitem.l_extendedprice * ((1)::numeric - lineitem.l_discount))
            ELSE (0)::numeric
        END)) / sum((lineitem.l_extendedprice * ((1)::numeric - lineitem.l_discount)))) AS promo_revenue
   FROM public.lineitem,
    public.part
  WHERE ((lineitem.l_partkey = part.p_partkey) AND (lineitem.l_shipdate >= '1995-09-01'::date) AND (lineitem.l_shipdate < ('1995-09-01'::date + '1 mon'::interval)))`,
  q15: ` WITH revenue0 AS (
         SELECT lineitem.l_suppkey AS supplier_no,
            sum((lineitem.l_extendedprice * ((1)::numeric - lineitem.l_discount))) AS total_revenue
           FROM public.lineitem
          WHERE ((lineitem.l_shipdate >= '1996-01-01'::date) AND (lineitem.l_shipdate < ('1996-01-01'::date + '3 mons'::interval)))
          GROUP BY lineitem.l_suppkey
        )
 SELECT supplier.s_suppkey,
    supplier.s_name,
    supplier.s_address,
    supplier.s_phone,
    revenue0.total_revenue
   FROM public.supplier,
    revenue0
  WHERE ((supplier.s_suppkey = revenue0.supplier_no) AND (revenue0.total_revenue = ( SELECT max(revenue0_1.total_revenue) AS max
           FROM revenue0 revenue0_1)))`,
  q16: ` SELECT part.p_brand,
    part.p_type,
    part.p_size,
    count(DISTINCT partsupp.ps_suppkey) AS supplier_cnt
   FROM public.partsupp,
    public.part
  WHERE ((part.p_partkey = partsupp.ps_partkey) AND (part.p_brand <> 'Brand#45'::bpchar) AND ((part.p_type)::text !~~ 'MEDIUM POLISHED%'::text) AND (part.p_size = ANY (ARRAY[49, 14, 23, 45, 19, 3, 36, 9])) AND (NOT (partsupp.ps_suppkey IN ( SELECT supplier.s_suppkey
           FROM public.supplier
          WHERE ((supplier.s_comment)::text ~~ '%Customer%Complaints%'::text)))))
  GROUP BY part.p_brand, part.p_type, part.p_size`,
  q17: ` SELECT (sum(lineitem.l_extendedprice) / 7.0) AS avg_yearly
   FROM public.lineitem,
    public.part
  WHERE ((part.p_partkey = lineitem.l_partkey) AND (part.p_brand = 'Brand#23'::bpchar) AND (part.p_container = 'MED BOX'::bpchar) AND (lineitem.l_quantity < ( SELECT (0.2 * avg(lineitem_1.l_quantity))
           FROM public.lineitem lineitem_1
          WHERE (lineitem_1.l_partkey = part.p_partkey))))`,
  q18: ` SELECT customer.c_name,
    customer.c_custkey,
    orders.o_orderkey,
    orders.o_orderdate,
    orders.o_totalprice,
    sum(lineitem.l_quantity) AS sum_qty
   FROM public.customer,
    public.orders,
    public.lineitem
  WHERE ((orders.o_orderkey IN ( SELECT lineitem_1.l_orderkey
           FROM public.lineitem lineitem_1
          GROUP BY lineitem_1.l_orderkey
         HAVING (sum(lineitem_1.l_quantity) > (300)::numeric))) AND (customer.c_custkey = orders.o_custkey) AND (orders.o_orderkey = lineitem.l_orderkey))
  GROUP BY customer.c_name, customer.c_custkey, orders.o_orderkey, orders.o_orderdate, orders.o_totalprice`,
  q19: ` SELECT sum((lineitem.l_extendedprice * ((1)::numeric - lineitem.l_discount))) AS revenue
   FROM public.lineitem,
    public.part
  WHERE (((part.p_partkey = lineitem.l_partkey) AND (part.p_brand = 'Brand#12'::bpchar) AND (part.p_container = ANY (ARRAY['SM CASE'::bpchar, 'SM BOX'::bpchar, 'SM PACK'::bpchar, 'SM PKG'::bpchar])) AND (lineitem.l_quantity >= (1)::numeric) AND (lineitem.l_quantity <= ((1 + 10))::numeric) AND ((part.p_size >= 1) AND (part.p_size <= 5)) AND (lineitem.l_shipmode = ANY (ARRAY['AIR'::bpchar, 'AIR REG'::bpchar])) AND (lineitem.l_shipinstruct = 'DELIVER IN PERSON'::bpchar)) OR ((part.p_partkey = lineitem.l_partkey) AND (part.p_brand = 'Brand#23'::bpchar) AND (part.p_container = ANY (ARRAY['MED BAG'::bpchar, 'MED BOX'::bpchar, 'MED PKG'::bpchar, 'MED PACK'::bpchar])) AND (lineitem.l_quantity >= (10)::numeric) AND (lineitem.l_quantity <= ((10 + 10))::numeric) AND ((part.p_size >= 1) AND (part.p_size <= 10)) AND (lineitem.l_shipmode = ANY (ARRAY['AIR'::bpchar, 'AIR REG'::bpchar])) AND (lineitem.l_shipinstruct = 'DELIVER IN PERSON'::bpchar)) OR ((part.p_partkey = lineitem.l_partkey) AND (part.p_brand = 'Brand#34'::bpchar) AND (part.p_container = ANY (ARRAY['LG CASE'::bpchar, 'LG BOX'::bpchar, 'LG PACK'::bpchar, 'LG PKG'::bpchar])) AND (lineitem.l_quantity >= (20)::numeric) AND (lineitem.l_quantity <= ((20 + 10))::numeric) AND ((part.p_size >= 1) AND (part.p_size <= 15)) AND (lineitem.l_shipmode = ANY (ARRAY['AIR'::bpchar, 'AIR REG'::bpchar])) AND (lineitem.l_shipinstruct = 'DELIVER IN PERSON'::bpchar)))`,
  q20: ` SELECT supplier.s_name,
    supplier.s_address
   FROM public.supplier,
    public.nation
  WHERE ((supplier.s_suppkey IN ( SELECT partsupp.ps_suppkey
           FROM public.partsupp
          WHERE ((partsupp.ps_partkey IN ( SELECT part.p_partkey
                   FROM public.part
                  WHERE ((part.p_name)::text ~~ 'forest%'::text))) AND ((partsupp.ps_availqty)::numeric > ( SELECT (0.5 * sum(lineitem.l_quantity))
                   FROM public.lineitem
                  WHERE ((lineitem.l_partkey = partsupp.ps_partkey) AND (lineitem.l_suppkey = partsupp.ps_suppkey) AND (lineitem.l_shipdate >= '1994-01-01'::date) AND (lineitem.l_shipdate < ('1994-01-01'::date + '1 year'::interval)))))))) AND (supplier.s_nationkey = nation.n_nationkey) AND (nation.n_name = 'CANADA'::bpchar))`,
  q21: ` SELECT supplier.s_name,
    count(*) AS numwait
   FROM public.supplier,
    public.lineitem l1,
    public.orders,
    public.nation
  WHERE ((supplier.s_suppkey = l1.l_suppkey) AND (orders.o_orderkey = l1.l_orderkey) AND (orders.o_orderstatus = 'F'::bpchar) AND (l1.l_receiptdate > l1.l_commitdate) AND (EXISTS ( SELECT l2.l_orderkey,
            l2.l_partkey,
            l2.l_suppkey,
            l2.l_linenumber,
            l2.l_quantity,
            l2.l_extendedprice,
            l2.l_discount,
            l2.l_tax,
            l2.l_returnflag,
            l2.l_linestatus,
            l2.l_shipdate,
            l2.l_commitdate,
            l2.l_receiptdate,
            l2.l_shipinstruct,
            l2.l_shipmode,
            l2.l_comment
           FROM public.lineitem l2
          WHERE ((l2.l_orderkey = l1.l_orderkey) AND (l2.l_suppkey <> l1.l_suppkey)))) AND (NOT (EXISTS ( SELECT l3.l_orderkey,
            l3.l_partkey,
            l3.l_suppkey,
            l3.l_linenumber,
            l3.l_quantity,
            l3.l_extendedprice,
            l3.l_discount,
            l3.l_tax,
            l3.l_returnflag,
            l3.l_linestatus,
            l3.l_shipdate,
            l3.l_commitdate,
            l3.l_receiptdate,
            l3.l_shipinstruct,
            l3.l_shipmode,
            l3.l_comment
           FROM public.lineitem l3
          WHERE ((l3.l_orderkey = l1.l_orderkey) AND (l3.l_suppkey <> l1.l_suppkey) AND (l3.l_receiptdate > l3.l_commitdate))))) AND (supplier.s_nationkey = nation.n_nationkey) AND (nation.n_name = 'SAUDI ARABIA'::bpchar))
  GROUP BY supplier.s_name`,
  q22: ` SELECT custsale.cntrycode,
    count(*) AS numcust,
    sum(custsale.c_acctbal) AS totacctbal
   FROM ( SELECT SUBSTRING(customer.c_phone FROM 1 FOR 2) AS cntrycode,
            customer.c_acctbal
           FROM public.customer
          WHERE ((SUBSTRING(customer.c_phone FROM 1 FOR 2) = ANY (ARRAY['13'::text, '31'::text, '23'::text, '29'::text, '30'::text, '18'::text, '17'::text])) AND (customer.c_acctbal > ( SELECT avg(customer_1.c_acctbal) AS avg
                   FROM public.customer customer_1
                  WHERE ((customer_1.c_acctbal > 0.00) AND (SUBSTRING(customer_1.c_phone FROM 1 FOR 2) = ANY (ARRAY['13'::text, '31'::text, '23'::text, '29'::text, '30'::text, '18'::text, '17'::text]))))) AND (NOT (EXISTS ( SELECT orders.o_orderkey,
                    orders.o_custkey,
                    orders.o_orderstatus,
                    orders.o_totalprice,
                    orders.o_orderdate,
                    orders.o_orderpriority,
                    orders.o_clerk,
                    orders.o_shippriority,
                    orders.o_comment
                   FROM public.orders
                  WHERE (orders.o_custkey = customer.c_custkey)))))) custsale
  GROUP BY custsale.cntrycode`,
};
