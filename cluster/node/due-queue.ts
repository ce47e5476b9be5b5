// The node's scheduler queue: stream tables keyed by due time in a binary min-heap, so a tick
// costs what is due (log n each), never a scan of every stream table. Rescheduling pushes a new
// entry and leaves the old one to be skipped when it surfaces (lazy deletion by generation).
// A stream table that is due but has nothing to read is parked: it leaves the heap and waits in
// a set, which the tick hands to the source check as it is, until changes arrive.

interface Entry {
  readonly due: number;
  readonly id: string;
  readonly generation: number;
}

export class DueQueue {
  private readonly heap: Entry[] = [];
  private readonly current = new Map<string, number>();
  private readonly waiting = new Set<string>();
  private generation = 0;

  /** Due at `due` (epoch ms), replacing any earlier entry of `id`. */
  schedule(id: string, due: number): void {
    this.waiting.delete(id);
    const generation = ++this.generation;
    this.current.set(id, generation);
    this.push({ due, id, generation });
    // Stale entries would pile up under a stream table rescheduled on every event.
    if (this.heap.length > 4 * this.current.size + 64) this.compact();
  }

  /** Due, with nothing to read yet: out of the heap until scheduled again. */
  park(id: string): void {
    this.current.delete(id);
    this.waiting.add(id);
  }

  get parked(): ReadonlySet<string> {
    return this.waiting;
  }

  remove(id: string): void {
    this.current.delete(id);
    this.waiting.delete(id);
  }

  /** Removes and returns the ids due at or before `now`, earliest first. */
  popDue(now: number): string[] {
    const due: string[] = [];
    for (let top = this.heap[0]; top !== undefined && top.due <= now; top = this.heap[0]) {
      this.pop();
      if (this.current.get(top.id) === top.generation) {
        this.current.delete(top.id);
        due.push(top.id);
      }
    }
    return due;
  }

  get size(): number {
    return this.current.size + this.waiting.size;
  }

  private compact(): void {
    const live = this.heap.filter((e) => this.current.get(e.id) === e.generation);
    this.heap.length = 0;
    for (const e of live) this.push(e);
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((heap[parent] as Entry).due <= entry.due) break;
      heap[i] = heap[parent] as Entry;
      i = parent;
    }
    heap[i] = entry;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child =
        right < heap.length && (heap[right] as Entry).due < (heap[left] as Entry).due ? right : left;
      if ((heap[child] as Entry).due >= last.due) break;
      heap[i] = heap[child] as Entry;
      i = child;
    }
    heap[i] = last;
  }
}
