// How a command speaks: text for people on stdout, one JSON document (or JSON lines) for
// programs with --json, and progress on stderr only when a person is watching a terminal.

export interface Output {
  readonly json: boolean;
  /** A line for people; silent with --json. */
  line(text: string): void;
  /** The machine-readable result; silent without --json. */
  result(value: unknown): void;
  /** A side remark (NOTICE, warning) on stderr; with --json it belongs in the result instead. */
  note(text: string): void;
}

export function output(json: boolean): Output {
  return {
    json,
    line: (text) => {
      if (!json) process.stdout.write(`${text}\n`);
    },
    result: (value) => {
      if (json) process.stdout.write(`${JSON.stringify(value)}\n`);
    },
    note: (text) => {
      if (!json) process.stderr.write(`${text}\n`);
    },
  };
}

export interface Progress {
  update(label: string): void;
  stop(): void;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * A spinner with elapsed time on stderr. Only on a TTY and without --json: a pipe or a log file
 * would fill with carriage returns, and stdout stays clean for the result either way.
 */
export function progress(
  label: string,
  json: boolean,
  stream: NodeJS.WriteStream = process.stderr,
): Progress {
  if (json || !stream.isTTY) return { update: () => undefined, stop: () => undefined };
  const started = Date.now();
  let current = label;
  let frame = 0;
  const draw = () => {
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    stream.write(`\r\x1b[K${FRAMES[frame++ % FRAMES.length]} ${current} ${seconds}s`);
  };
  draw();
  const timer = setInterval(draw, 100);
  return {
    update: (next) => {
      current = next;
      draw();
    },
    stop: () => {
      clearInterval(timer);
      stream.write('\r\x1b[K');
    },
  };
}
