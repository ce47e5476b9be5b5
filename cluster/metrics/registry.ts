// The Prometheus series of one refresh node, in a registry of its own (several nodes can share a
// process in tests). The node reports events through the methods; gauges that describe state
// (leases held, change buffers, readiness) are read from the node at scrape time instead.
import type pg from 'pg';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { changeBufferRows } from './buffers.js';

/** What a scrape reads from the node it belongs to. */
export interface NodeView {
  readonly pool: pg.Pool;
  /** `schema.name` of every stream table whose lease this node holds */
  heldStreamTables(): readonly string[];
  /** migrations ran and the node joined the cluster */
  ready(): boolean;
}

export interface RefreshFacts {
  readonly action: string;
  readonly durationMs: number;
  readonly rowsInserted: number;
  readonly rowsDeleted: number;
}

// From a one-row differential refresh (a few ms) to a FULL recompute of a large table (minutes).
const REFRESH_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
// A tick is one query for change existence over the due tables; above 100 ms the node falls behind.
const TICK_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

export class NodeMetrics {
  readonly registry = new Registry();
  private view: NodeView | undefined;

  private readonly refreshSeconds = new Histogram({
    name: 'pgtrickle_refresh_duration_seconds',
    help: 'Duration of completed refreshes, by stream table and action (FULL, DIFFERENTIAL, …).',
    labelNames: ['st', 'action'],
    buckets: REFRESH_BUCKETS,
    registers: [this.registry],
  });

  private readonly rowsApplied = new Counter({
    name: 'pgtrickle_rows_applied_total',
    help: 'Rows refreshes inserted into or deleted from a stream table.',
    labelNames: ['st', 'op'],
    registers: [this.registry],
  });

  private readonly failures = new Counter({
    name: 'pgtrickle_refresh_failures_total',
    help: 'Failed refreshes (work=refresh) and reinitializations (work=reinit), by stream table.',
    labelNames: ['st', 'work'],
    registers: [this.registry],
  });

  private readonly backoffs = new Counter({
    name: 'pgtrickle_backoffs_total',
    help: 'Times a stream table entered backoff after failures.',
    labelNames: ['st'],
    registers: [this.registry],
  });

  private readonly tickSeconds = new Histogram({
    name: 'pgtrickle_scheduler_tick_seconds',
    help: 'Duration of a scheduler tick: popping due tables and asking which have changes.',
    buckets: TICK_BUCKETS,
    registers: [this.registry],
  });

  constructor() {
    const metrics = this;
    new Gauge({
      name: 'pgtrickle_lease_held',
      help: 'One series per stream table whose lease this node holds (value 1).',
      labelNames: ['st'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const st of metrics.view?.heldStreamTables() ?? []) this.set({ st }, 1);
      },
    });
    new Gauge({
      name: 'pgtrickle_leases_held',
      help: 'Stream tables whose lease this node holds.',
      registers: [this.registry],
      collect() {
        this.set(metrics.view?.heldStreamTables().length ?? 0);
      },
    });
    new Gauge({
      name: 'pgtrickle_change_buffer_rows',
      help: 'Rows waiting in the change buffer of a source table (planner estimate, pg_stat_user_tables).',
      labelNames: ['source'],
      registers: [this.registry],
      async collect() {
        this.reset();
        const pool = metrics.view?.pool;
        if (pool === undefined) return;
        // A scrape during a database outage still answers, without this series.
        const sizes = await changeBufferRows(pool).catch(() => new Map<string, number>());
        for (const [source, rows] of sizes) this.set({ source }, rows);
      },
    });
    new Gauge({
      name: 'pgtrickle_node_ready',
      help: '1 once migrations ran and the node joined the cluster, as /readyz answers.',
      registers: [this.registry],
      collect() {
        this.set(metrics.ready() ? 1 : 0);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'pgtrickle_' });
  }

  /** Called by the node once its pool exists, before migrations. */
  attach(view: NodeView): void {
    this.view = view;
  }

  ready(): boolean {
    return this.view?.ready() ?? false;
  }

  refreshed(st: string, facts: RefreshFacts): void {
    this.refreshSeconds.observe({ st, action: facts.action }, facts.durationMs / 1000);
    this.rowsApplied.inc({ st, op: 'insert' }, facts.rowsInserted);
    this.rowsApplied.inc({ st, op: 'delete' }, facts.rowsDeleted);
  }

  failed(st: string, work: string): void {
    this.failures.inc({ st, work });
  }

  backoff(st: string): void {
    this.backoffs.inc({ st });
  }

  tick(durationMs: number): void {
    this.tickSeconds.observe(durationMs / 1000);
  }
}
