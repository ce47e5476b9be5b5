// The XState machine of one stream table on the node that holds its lease: when to refresh,
// when to rebuild, how to back off, when to give the table up. Decisions live in scheduling.ts.
//
// The work itself (one transaction, I1) is started by the entry action of `refreshing` or
// `reinit` and reports back with WORK_DONE or WORK_FAILED, rather than being an invoked promise
// actor: spawning a child actor per refresh (an actor, its registration, an AbortController, and
// the garbage of all three) was nearly all of what a tick paid per refresh started
// (bench/cluster-dispatch.ts). Nothing is lost by not aborting a refresh the actor walks away
// from: it is one transaction the database fences by epoch (I3), and its late report lands on an
// actor in a final state, which ignores it.
import { assign, enqueueActions, not, setup } from 'xstate';
import { DEFAULT_BACKOFF_CONFIG, failureDelayMs, ON_SCHEDULE } from '../backoff/index.js';
import { StaleFencingEpoch, WorkNotProvided } from './errors.js';
import { afterFailure, afterSuccess, isPaused, nextStep, withFacts } from './scheduling.js';
import type {
  CatalogFacts,
  RefreshInput,
  RefreshResult,
  StreamTableContext,
  StreamTableEmitted,
  StreamTableEvent,
  StreamTableInput,
  Work,
} from './types.js';

/** Runs one refresh or one reinit for the actor; the node's runs talk to PostgreSQL. */
export type RunWork = (input: RefreshInput) => Promise<RefreshResult>;

export interface WorkRunners {
  /** one scheduled refresh: the generated refresh function in one transaction (I1) */
  readonly refresh: RunWork;
  /** rebuild the plan (and storage if needed), then a FULL refresh */
  readonly reinit: RunWork;
}

function workInput(context: StreamTableContext): RefreshInput {
  return { id: context.id, name: context.name, epoch: context.epoch };
}

interface Self {
  send(event: StreamTableEvent): void;
  getSnapshot(): { readonly status: string };
}

// The report goes through the actor's mailbox like any other event, so it is handled in order
// with the signals that arrived while the work ran. An actor that gave the table up or stopped
// meanwhile has nothing left to learn from it.
function report(self: Self, work: Promise<RefreshResult>): void {
  const tell = (event: StreamTableEvent) => {
    if (self.getSnapshot().status === 'active') self.send(event);
  };
  work.then(
    (result) => tell({ type: 'WORK_DONE', result }),
    (error: unknown) => tell({ type: 'WORK_FAILED', error }),
  );
}

export const streamTableMachine = setup({
  types: {} as {
    context: StreamTableContext;
    events: StreamTableEvent;
    input: StreamTableInput;
    emitted: StreamTableEmitted;
  },
  guards: {
    shouldSuspend: ({ context }) => nextStep(context, context.now()) === 'suspend',
    shouldReinit: ({ context }) => nextStep(context, context.now()) === 'reinit',
    shouldRefresh: ({ context }) => nextStep(context, context.now()) === 'refresh',
    isPaused: ({ context }) => isPaused(context.status),
    isFencedOut: (_, params: { error: unknown }) => params.error instanceof StaleFencingEpoch,
  },
  delays: {
    failureBackoff: ({ context }) =>
      failureDelayMs(context.consecutiveFailures, context.backoff.failure, context.random),
  },
  actions: {
    // Placeholders: withWork() provides the runs. A machine started bare fails its work and backs
    // off instead of hanging in `refreshing`.
    startRefresh: ({ self }) => report(self, Promise.reject(new WorkNotProvided('refresh'))),
    startReinit: ({ self }) => report(self, Promise.reject(new WorkNotProvided('reinit'))),
    noteWork: assign({ workPending: true }),
    applyCatalogFacts: assign(({ context }, params: { facts: CatalogFacts }) =>
      withFacts(context, params.facts),
    ),
    suspend: assign({ status: 'SUSPENDED' }),
    resume: assign({ status: 'ACTIVE' }),
    // Signals that arrive while the work runs may postdate its snapshot, so they are kept for the
    // next round; the ones before it are consumed by it.
    claimWork: assign(({ context }) => ({ workPending: false, startedAt: context.now() })),
    claimReinit: assign(({ context }) => ({
      needsReinit: false,
      workPending: false,
      startedAt: context.now(),
    })),
    recordSuccess: enqueueActions(({ context, enqueue }, params: { work: Work; result: RefreshResult }) => {
      const startedAt = context.startedAt ?? context.now();
      const finishedAt = context.now();
      const { update, late } = afterSuccess(
        context,
        params.work,
        params.result,
        startedAt,
        finishedAt,
        context.backoff.auto,
      );
      enqueue.assign(update);
      enqueue.emit({ type: 'refreshed', id: context.id, ...params, startedAt, finishedAt, late });
    }),
    recordFailure: enqueueActions(({ context, enqueue }, params: { work: Work; error: unknown }) => {
      const update = afterFailure(context, params.work);
      enqueue.assign(update);
      enqueue.emit({
        type: 'failed',
        id: context.id,
        ...params,
        consecutiveFailures: update.consecutiveFailures ?? context.consecutiveFailures,
      });
    }),
  },
}).createMachine({
  id: 'streamTable',
  context: ({ input }) => ({
    id: input.id,
    name: input.name,
    epoch: input.epoch,
    schedule: input.schedule,
    status: input.status,
    needsReinit: input.needsReinit,
    populated: input.populated,
    lastRefreshAt: input.lastRefreshAt,
    consecutiveFailures: input.consecutiveFailures,
    // Lateness is not in the catalog: a rebuilt actor starts on pace and relearns it.
    pace: ON_SCHEDULE,
    workPending: input.workPending ?? false,
    startedAt: undefined,
    now: input.now,
    random: input.random ?? Math.random,
    backoff: input.backoff ?? DEFAULT_BACKOFF_CONFIG,
  }),
  initial: 'idle',
  on: {
    // DUE carries nothing: handling it makes the current state re-check its guards against the clock.
    DUE: {},
    CHANGES_PENDING: { actions: 'noteWork' },
    UPSTREAM_REFRESHED: { actions: 'noteWork' },
    CATALOG_CHANGED: {
      actions: { type: 'applyCatalogFacts', params: ({ event }) => ({ facts: event.facts }) },
    },
    SUSPEND: { actions: 'suspend' },
    RESUME: { actions: 'resume' },
    LEASE_LOST: { target: '.released' },
    STOP: { target: '.stopped' },
  },
  states: {
    // Leaves as soon as there is something to do; every event re-checks.
    idle: {
      always: [
        { guard: 'shouldSuspend', target: 'suspended' },
        { guard: 'shouldReinit', target: 'reinit' },
        { guard: 'shouldRefresh', target: 'refreshing' },
      ],
    },
    // A pause or a reinit asked for meanwhile waits for the refresh: it is one short transaction.
    refreshing: {
      entry: ['claimWork', 'startRefresh'],
      on: {
        WORK_DONE: {
          target: 'idle',
          actions: {
            type: 'recordSuccess',
            params: ({ event }) => ({ work: 'refresh', result: event.result }),
          },
        },
        WORK_FAILED: [
          {
            guard: { type: 'isFencedOut', params: ({ event }) => ({ error: event.error }) },
            target: 'released',
          },
          {
            target: 'backoff',
            actions: {
              type: 'recordFailure',
              params: ({ event }) => ({ work: 'refresh', error: event.error }),
            },
          },
        ],
      },
    },
    reinit: {
      entry: ['claimReinit', 'startReinit'],
      on: {
        WORK_DONE: {
          target: 'idle',
          actions: {
            type: 'recordSuccess',
            params: ({ event }) => ({ work: 'reinit', result: event.result }),
          },
        },
        WORK_FAILED: [
          {
            guard: { type: 'isFencedOut', params: ({ event }) => ({ error: event.error }) },
            target: 'released',
          },
          {
            target: 'backoff',
            actions: {
              type: 'recordFailure',
              params: ({ event }) => ({ work: 'reinit', error: event.error }),
            },
          },
        ],
      },
    },
    // idle decides after the delay whether to retry a refresh or a reinit.
    backoff: {
      always: { guard: 'isPaused', target: 'suspended' },
      after: { failureBackoff: { target: 'idle' } },
    },
    suspended: {
      always: { guard: not('isPaused'), target: 'idle' },
    },
    released: { type: 'final' },
    stopped: { type: 'final' },
  },
});

/** The machine with its work provided: what the node, the bench and the tests start. */
export function withWork(runners: WorkRunners) {
  return streamTableMachine.provide({
    actions: {
      startRefresh: ({ context, self }) => report(self, runners.refresh(workInput(context))),
      startReinit: ({ context, self }) => report(self, runners.reinit(workInput(context))),
    },
  });
}
