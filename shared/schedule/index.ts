// Schedules: parsing the SQL API's schedule strings and computing due times from them.
export { ScheduleInvalid } from './errors.js';
export { nextDue, periodMs } from './next-due.js';
export { parseSchedule } from './parse.js';
export type {
  CalculatedSchedule,
  ConcreteSchedule,
  CronSchedule,
  IntervalSchedule,
  Schedule,
} from './schedule.js';
