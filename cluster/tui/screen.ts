// The terminal side of `pgtrickle top`, with plain ANSI escapes: a full-screen table redrawn in
// place needs four sequences (alternate screen, cursor home, erase line, hide cursor), fewer
// than any TUI library's setup, and keeps render.ts a pure function of state.
export class Screen {
  private opened = false;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stdout,
    private readonly input: NodeJS.ReadStream = process.stdin,
  ) {}

  get columns(): number {
    return this.out.columns ?? 80;
  }

  get rows(): number {
    return this.out.rows ?? 24;
  }

  open(onInput: (data: string) => void, onResize: () => void): void {
    this.opened = true;
    this.out.write('\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J');
    this.input.setRawMode(true);
    this.input.setEncoding('utf8');
    this.input.on('data', onInput);
    this.input.resume();
    this.out.on('resize', onResize);
    // The terminal is restored even when the process ends by a path that skipped close().
    process.once('exit', this.close);
  }

  /** Each line is erased to its end, so a shorter line leaves nothing of the previous frame. */
  draw(lines: readonly string[]): void {
    if (!this.opened) return;
    this.out.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\r\n')}\x1b[J`);
  }

  readonly close = (): void => {
    if (!this.opened) return;
    this.opened = false;
    this.out.write('\x1b[0m\x1b[?25h\x1b[?1049l');
    this.input.setRawMode(false);
    this.input.pause();
    this.input.removeAllListeners('data');
    this.out.removeAllListeners('resize');
    process.off('exit', this.close);
  };
}
