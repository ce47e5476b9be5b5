// The synchronous half of a scheduler tick, shared by the node and bench/cluster-dispatch.ts:
// tell each due stream table whether its sources changed and that it is due, and put those
// that stay idle back in the queue. Cost is proportional to the due ids, not to all tables.
import type { Actor } from 'xstate';
import { dueAt, type streamTableMachine } from '../../actors/stream-table/index.js';
import type { DueQueue } from './due-queue.js';

export type StreamTableActor = Actor<typeof streamTableMachine>;

export function dispatch(
  queue: DueQueue,
  actors: ReadonlyMap<string, { readonly actor: StreamTableActor }>,
  due: readonly string[],
  pending: ReadonlySet<string>,
  now: () => number,
): void {
  for (const id of due) {
    const actor = actors.get(id)?.actor;
    if (actor === undefined) continue;
    if (pending.has(id)) actor.send({ type: 'CHANGES_PENDING' });
    actor.send({ type: 'DUE' });
    // Still idle: nothing to read yet, so it is checked again when next due.
    const snapshot = actor.getSnapshot();
    if (snapshot.value === 'idle') queue.schedule(id, dueAt(snapshot.context, now()));
  }
}
