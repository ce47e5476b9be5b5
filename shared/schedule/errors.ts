// Why a schedule string was refused: a typed error with the text as given and a hint.

export class ScheduleInvalid extends Error {
  readonly code = 'SCHEDULE_INVALID';
  readonly text: string;
  readonly hint: string;

  constructor(text: string, reason?: string) {
    super(reason ? `invalid schedule "${text}": ${reason}` : `invalid schedule "${text}"`);
    this.name = 'ScheduleInvalid';
    this.text = text;
    this.hint =
      "Use a duration such as '30s', '5m' or '1h30m', a cron expression such as '*/5 * * * *', or 'calculated'.";
  }
}
