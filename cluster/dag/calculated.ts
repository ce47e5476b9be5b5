// CALCULATED schedules: as often as the stream tables that read this one need it.
import { type ConcreteSchedule, periodMs } from '../../shared/schedule/index.js';
import type { DagNode } from './dag.js';

export interface CalculatedOptions {
  readonly fallbackMs: number;
  readonly now: number;
}

/**
 * A CALCULATED stream table refreshes at the tightest period among its readers, whose own
 * periods are resolved first (readers come later in `order`), so CALCULATED chains resolve
 * transitively. With no readers it falls back to `fallbackMs`.
 */
export function resolveSchedules(
  nodes: ReadonlyMap<string, DagNode>,
  readers: ReadonlyMap<string, readonly string[]>,
  order: readonly string[],
  options: CalculatedOptions,
): Map<string, ConcreteSchedule> {
  const schedules = new Map<string, ConcreteSchedule>();
  const periods = new Map<string, number>();
  for (let i = order.length - 1; i >= 0; i--) {
    const id = order[i] as string;
    const schedule = (nodes.get(id) as DagNode).schedule;
    let resolved: ConcreteSchedule;
    switch (schedule.kind) {
      case 'interval':
      case 'cron':
        resolved = schedule;
        break;
      case 'calculated': {
        let ms = Number.POSITIVE_INFINITY;
        for (const reader of readers.get(id) ?? []) ms = Math.min(ms, periods.get(reader) as number);
        resolved = { kind: 'interval', ms: Number.isFinite(ms) ? ms : options.fallbackMs };
        break;
      }
      default: {
        const exhaustive: never = schedule;
        resolved = exhaustive;
      }
    }
    schedules.set(id, resolved);
    periods.set(id, periodMs(resolved, options.now));
  }
  return schedules;
}
