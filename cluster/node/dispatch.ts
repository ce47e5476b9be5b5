// The synchronous half of a scheduler tick, shared by the node and bench/cluster-dispatch.ts.
// The tick pops the due ids, asks the database once which of them and of the parked ids have
// changes, then calls dispatch: due tables with work are told so and start refreshing; due
// tables without work are parked without waking their actors. Cost is proportional to what is
// due or changed, never to every table the node holds.
import type { Actor } from 'xstate';
import { dueAt, nextStep, type streamTableMachine } from '../../actors/stream-table/index.js';
import type { DueQueue } from './due-queue.js';

export type StreamTableActor = Actor<typeof streamTableMachine>;

/** The ids the source check must look at this tick: the newly due ones and the parked ones. */
export function candidates(queue: DueQueue, due: readonly string[]): string[] {
  return queue.parked.size === 0 ? [...due] : [...due, ...queue.parked];
}

export function dispatch(
  queue: DueQueue,
  actors: ReadonlyMap<string, { readonly actor: StreamTableActor }>,
  due: readonly string[],
  pending: ReadonlySet<string>,
  now: () => number,
): void {
  for (const id of due) if (!pending.has(id)) settle(queue, actors.get(id)?.actor, id, false, now);
  for (const id of pending) settle(queue, actors.get(id)?.actor, id, true, now);
}

function settle(
  queue: DueQueue,
  actor: StreamTableActor | undefined,
  id: string,
  changed: boolean,
  now: () => number,
): void {
  if (actor === undefined) return;
  let snapshot = actor.getSnapshot();
  if (!changed && snapshot.value === 'idle' && nextStep(snapshot.context, now()) === 'wait') {
    place(queue, id, snapshot.context, now());
    return;
  }
  // Every event makes an idle actor re-check its guards against the clock, so news of changes
  // starts a due refresh by itself; DUE is for the rest (a reinit, pending upstream work).
  actor.send({ type: changed ? 'CHANGES_PENDING' : 'DUE' });
  snapshot = actor.getSnapshot();
  if (snapshot.value === 'idle') place(queue, id, snapshot.context, now());
  // Busy: out of the queue until its return to idle schedules it again.
  else queue.remove(id);
}

// An idle table either waits for its time (heap) or, already due, for changes (parked).
function place(queue: DueQueue, id: string, context: Parameters<typeof dueAt>[0], at: number): void {
  const due = dueAt(context, at);
  if (due > at) queue.schedule(id, due);
  else queue.park(id);
}
