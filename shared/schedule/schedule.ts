// What a stream table's `schedule` column means once parsed: a fixed interval, a cron
// expression, or CALCULATED (derived from the stream tables that read it).

export interface IntervalSchedule {
  readonly kind: 'interval';
  readonly ms: number;
}

export interface CronSchedule {
  readonly kind: 'cron';
  /** Five or six fields (seconds first when six), or a macro such as '@hourly'; whitespace collapsed. */
  readonly expression: string;
}

export interface CalculatedSchedule {
  readonly kind: 'calculated';
}

export type Schedule = IntervalSchedule | CronSchedule | CalculatedSchedule;

/** A schedule a clock can evaluate. CALCULATED has no times of its own until the DAG resolves it. */
export type ConcreteSchedule = IntervalSchedule | CronSchedule;
