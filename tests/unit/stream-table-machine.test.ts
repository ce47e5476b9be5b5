import { describe, expect, it } from 'vitest';
import { createActor, SimulatedClock } from 'xstate';
import {
  dueAt,
  type RefreshInput,
  type RefreshResult,
  StaleFencingEpoch,
  type StreamTableEmitted,
  type StreamTableInput,
  streamTableMachine,
  WorkNotProvided,
  withWork,
} from '../../actors/stream-table/index.js';

const T0 = Date.parse('2024-01-01T00:00:00Z');
const INTERVAL = 10_000;
const BASE: Omit<StreamTableInput, 'now'> = {
  id: '7',
  name: 'public.order_totals',
  epoch: 3,
  schedule: { kind: 'interval', ms: INTERVAL },
  status: 'ACTIVE',
  needsReinit: false,
  populated: true,
  lastRefreshAt: T0,
  consecutiveFailures: 0,
};
const DIFFERENTIAL: RefreshResult = {
  action: 'DIFFERENTIAL',
  rowsInserted: 2,
  rowsDeleted: 1,
  durationMs: 4,
};
const REINITIALIZED: RefreshResult = {
  action: 'REINITIALIZE',
  rowsInserted: 9,
  rowsDeleted: 9,
  durationMs: 40,
};
// With equal jitter and a draw of 0.5, the n-th failure waits 3/4 of min(cap, 1s * 2^(n-1)).
const FIRST_DELAY = 750;
const SECOND_DELAY = 1_500;

interface Call {
  readonly input: RefreshInput;
  succeed(result: RefreshResult): Promise<void>;
  fail(error: unknown): Promise<void>;
}

// A refresh (or reinit) run the test finishes by hand, one call at a time.
function scripted() {
  const calls: Call[] = [];
  const run = (input: RefreshInput) =>
    new Promise<RefreshResult>((resolve, reject) => {
      calls.push({
        input,
        succeed: (result) => {
          resolve(result);
          return settle();
        },
        fail: (error) => {
          reject(error);
          return settle();
        },
      });
    });
  const last = (): Call => {
    const call = calls.at(-1);
    if (call === undefined) throw new Error('no call was made');
    return call;
  };
  return { run, calls, last };
}

// Runs report through microtasks; one macrotask later every report has landed.
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function start(input: Partial<StreamTableInput> = {}, provide = true) {
  const clock = new SimulatedClock();
  clock.set(T0);
  const refresh = scripted();
  const reinit = scripted();
  const machine = provide ? withWork({ refresh: refresh.run, reinit: reinit.run }) : streamTableMachine;
  const actor = createActor(machine, {
    clock,
    input: { ...BASE, now: () => clock.now(), random: () => 0.5, ...input },
  });
  const emitted: StreamTableEmitted[] = [];
  actor.on('*', (event) => emitted.push(event));
  actor.start();
  return {
    actor,
    clock,
    refresh,
    reinit,
    emitted,
    state: () => actor.getSnapshot().value,
    context: () => actor.getSnapshot().context,
    /** moves the clock to the next due time and signals changes: the actor starts refreshing */
    beDueWithChanges() {
      clock.set(Math.max(clock.now(), dueAt(actor.getSnapshot().context, clock.now())));
      actor.send({ type: 'CHANGES_PENDING' });
      actor.send({ type: 'DUE' });
    },
  };
}

describe('stream-table machine: refreshing', () => {
  it('stays idle while nothing changed, even long past its due time', () => {
    const st = start();
    st.clock.increment(5 * INTERVAL);
    st.actor.send({ type: 'DUE' });
    expect(st.state()).toBe('idle');
    expect(st.refresh.calls).toHaveLength(0);
  });

  it('fills a stream table never populated as soon as it starts', async () => {
    const st = start({ populated: false, lastRefreshAt: undefined });
    expect(st.state()).toBe('refreshing');
    expect(st.refresh.last().input).toEqual({ id: '7', name: 'public.order_totals', epoch: 3 });
    st.clock.increment(300);
    await st.refresh.last().succeed({ ...DIFFERENTIAL, action: 'FULL' });
    expect(st.state()).toBe('idle');
    expect(st.context()).toMatchObject({ populated: true, lastRefreshAt: T0, consecutiveFailures: 0 });
  });

  it('waits for the due time before refreshing pending changes', () => {
    const st = start();
    st.clock.increment(1_000);
    st.actor.send({ type: 'CHANGES_PENDING' });
    expect(st.state()).toBe('idle');
    st.clock.set(T0 + INTERVAL - 1);
    st.actor.send({ type: 'DUE' });
    expect(st.state()).toBe('idle');
    st.clock.set(T0 + INTERVAL);
    st.actor.send({ type: 'DUE' });
    expect(st.state()).toBe('refreshing');
  });

  it('refreshes at once when an upstream stream table refreshed after its due time', () => {
    const st = start();
    st.clock.increment(INTERVAL);
    st.actor.send({ type: 'UPSTREAM_REFRESHED' });
    expect(st.state()).toBe('refreshing');
  });

  it('counts the last refresh from its start and announces it', async () => {
    const st = start();
    st.beDueWithChanges();
    st.clock.increment(2_000);
    await st.refresh.last().succeed(DIFFERENTIAL);
    expect(st.context().lastRefreshAt).toBe(T0 + INTERVAL);
    expect(st.emitted).toEqual([
      {
        type: 'refreshed',
        id: '7',
        work: 'refresh',
        result: DIFFERENTIAL,
        startedAt: T0 + INTERVAL,
        finishedAt: T0 + INTERVAL + 2_000,
        late: false,
      },
    ]);
  });

  it('keeps changes signalled during a refresh for the next one, and drops those before it', async () => {
    const st = start();
    st.beDueWithChanges();
    await st.refresh.last().succeed(DIFFERENTIAL);
    expect(st.context().workPending).toBe(false);

    st.beDueWithChanges();
    st.actor.send({ type: 'CHANGES_PENDING' });
    await st.refresh.last().succeed(DIFFERENTIAL);
    expect(st.context().workPending).toBe(true);
    st.clock.increment(INTERVAL);
    st.actor.send({ type: 'DUE' });
    expect(st.state()).toBe('refreshing');
  });

  it('takes a first fill skipped for a held lock as served, without counting it', async () => {
    const st = start({ consecutiveFailures: 2, populated: false, lastRefreshAt: undefined });
    await st.refresh.last().succeed({ action: 'SKIPPED' });
    expect(st.state()).toBe('idle');
    expect(st.context()).toMatchObject({ lastRefreshAt: T0, consecutiveFailures: 2, populated: false });
  });

  it('takes a refresh skipped for a lock held elsewhere as served, without counting it', async () => {
    const st = start();
    st.beDueWithChanges();
    await st.refresh.last().succeed({ action: 'SKIPPED', busy: true });
    expect(st.context()).toMatchObject({ lastRefreshAt: T0 + INTERVAL, consecutiveFailures: 0 });
    st.actor.send({ type: 'UPSTREAM_REFRESHED' });
    expect(st.state()).toBe('idle');
  });

  it('stays due after a refresh that found nothing new, and refreshes on the next news of changes', async () => {
    const st = start();
    st.beDueWithChanges();
    await st.refresh.last().succeed({ action: 'SKIPPED' });
    expect(st.state()).toBe('idle');
    expect(st.context()).toMatchObject({ lastRefreshAt: T0, workPending: false });
    st.actor.send({ type: 'DUE' });
    expect(st.state()).toBe('idle');
    st.actor.send({ type: 'UPSTREAM_REFRESHED' });
    expect(st.state()).toBe('refreshing');
    expect(st.refresh.calls).toHaveLength(2);
  });

  it('refreshes a taken-over stream table as soon as it is due, without news of changes', () => {
    const st = start({ workPending: true, lastRefreshAt: T0 - INTERVAL });
    expect(st.state()).toBe('refreshing');
    const later = start({ workPending: true });
    expect(later.state()).toBe('idle');
    later.clock.increment(INTERVAL);
    later.actor.send({ type: 'DUE' });
    expect(later.state()).toBe('refreshing');
  });

  it('doubles the interval after three late cycles and resets when on time', async () => {
    const st = start();
    const cycle = async (durationMs: number) => {
      st.beDueWithChanges();
      expect(st.state()).toBe('refreshing');
      st.clock.increment(durationMs);
      await st.refresh.last().succeed(DIFFERENTIAL);
    };
    for (let i = 0; i < 3; i++) await cycle(INTERVAL + 2_000);
    expect(st.context().pace).toEqual({ lateCycles: 3, slowdown: 2 });
    expect(dueAt(st.context(), st.clock.now()) - (st.context().lastRefreshAt ?? 0)).toBe(2 * INTERVAL);
    expect(st.emitted.map((event) => event.type === 'refreshed' && event.late)).toEqual([true, true, true]);

    await cycle(INTERVAL + 2_000);
    expect(st.context().pace.slowdown).toBe(4);
    await cycle(1_000);
    expect(st.context().pace).toEqual({ lateCycles: 0, slowdown: 1 });
    expect(dueAt(st.context(), st.clock.now()) - (st.context().lastRefreshAt ?? 0)).toBe(INTERVAL);
  });

  it('puts a stream table back on pace when its schedule changes', async () => {
    const st = start();
    for (let i = 0; i < 3; i++) {
      st.beDueWithChanges();
      st.clock.increment(2 * INTERVAL);
      await st.refresh.last().succeed(DIFFERENTIAL);
    }
    expect(st.context().pace.slowdown).toBe(2);
    const facts = { name: BASE.name, status: 'ACTIVE', needsReinit: false } as const;
    st.actor.send({
      type: 'CATALOG_CHANGED',
      facts: { ...facts, schedule: { kind: 'interval', ms: 60_000 } },
    });
    expect(st.context().pace).toEqual({ lateCycles: 0, slowdown: 1 });
    expect(st.context().schedule).toEqual({ kind: 'interval', ms: 60_000 });
  });
});

describe('stream-table machine: failures and backoff', () => {
  it('backs off for the jittered delay after a failure, then retries', async () => {
    const st = start();
    st.beDueWithChanges();
    const error = new Error('connection reset');
    await st.refresh.last().fail(error);
    expect(st.state()).toBe('backoff');
    expect(st.context().consecutiveFailures).toBe(1);
    expect(st.emitted).toEqual([{ type: 'failed', id: '7', work: 'refresh', error, consecutiveFailures: 1 }]);

    st.clock.increment(FIRST_DELAY - 1);
    st.actor.send({ type: 'DUE' });
    expect(st.state()).toBe('backoff');
    st.clock.increment(1);
    expect(st.state()).toBe('refreshing');
    expect(st.refresh.calls).toHaveLength(2);
  });

  it('waits longer after each failure and forgets the failures after a success', async () => {
    const st = start();
    st.beDueWithChanges();
    await st.refresh.last().fail(new Error('one'));
    st.clock.increment(FIRST_DELAY);
    await st.refresh.last().fail(new Error('two'));
    expect(st.context().consecutiveFailures).toBe(2);
    st.clock.increment(SECOND_DELAY - 1);
    expect(st.state()).toBe('backoff');
    st.clock.increment(1);
    expect(st.state()).toBe('refreshing');
    await st.refresh.last().succeed(DIFFERENTIAL);
    expect(st.state()).toBe('idle');
    expect(st.context().consecutiveFailures).toBe(0);
  });

  it('fails with WorkNotProvided when no refresh run was given', async () => {
    const st = start({ populated: false, lastRefreshAt: undefined }, false);
    await settle();
    expect(st.state()).toBe('backoff');
    expect(st.emitted[0]).toMatchObject({ type: 'failed', error: expect.any(WorkNotProvided) });
  });
});

describe('stream-table machine: reinit', () => {
  const facts = { name: BASE.name, schedule: BASE.schedule, status: 'ACTIVE' } as const;

  it('rebuilds at once when the catalog asks for it, then goes back to idle', async () => {
    const st = start();
    st.actor.send({ type: 'CATALOG_CHANGED', facts: { ...facts, needsReinit: true } });
    expect(st.state()).toBe('reinit');
    expect(st.reinit.last().input).toEqual({ id: '7', name: 'public.order_totals', epoch: 3 });
    st.clock.increment(500);
    await st.reinit.last().succeed(REINITIALIZED);
    expect(st.state()).toBe('idle');
    expect(st.context()).toMatchObject({ needsReinit: false, populated: true, lastRefreshAt: T0 });
    expect(st.refresh.calls).toHaveLength(0);
    expect(st.emitted[0]).toMatchObject({ type: 'refreshed', work: 'reinit', result: REINITIALIZED });
  });

  it('starts with a rebuild when the catalog already asks for one', () => {
    const st = start({ needsReinit: true });
    expect(st.state()).toBe('reinit');
  });

  it('lets a refresh under way finish before rebuilding', async () => {
    const st = start();
    st.beDueWithChanges();
    st.actor.send({ type: 'CATALOG_CHANGED', facts: { ...facts, needsReinit: true } });
    expect(st.state()).toBe('refreshing');
    await st.refresh.last().succeed(DIFFERENTIAL);
    expect(st.state()).toBe('reinit');
  });

  it('retries a failed rebuild as a rebuild after backing off', async () => {
    const st = start({ needsReinit: true });
    await st.reinit.last().fail(new Error('relation does not exist'));
    expect(st.state()).toBe('backoff');
    expect(st.context().needsReinit).toBe(true);
    st.clock.increment(FIRST_DELAY);
    expect(st.state()).toBe('reinit');
    expect(st.reinit.calls).toHaveLength(2);
    expect(st.refresh.calls).toHaveLength(0);
  });

  it('rebuilds again when the definition changed during a rebuild', async () => {
    const st = start({ needsReinit: true });
    st.actor.send({ type: 'CATALOG_CHANGED', facts: { ...facts, needsReinit: true } });
    await st.reinit.last().succeed(REINITIALIZED);
    expect(st.state()).toBe('reinit');
    expect(st.reinit.calls).toHaveLength(2);
  });
});

describe('stream-table machine: suspension', () => {
  const facts = { name: BASE.name, schedule: BASE.schedule, needsReinit: false } as const;

  it('ignores due times and changes while suspended, and refreshes on RESUME', () => {
    const st = start();
    st.actor.send({ type: 'SUSPEND' });
    expect(st.state()).toBe('suspended');
    st.clock.increment(3 * INTERVAL);
    st.actor.send({ type: 'CHANGES_PENDING' });
    st.actor.send({ type: 'DUE' });
    expect(st.state()).toBe('suspended');
    expect(st.refresh.calls).toHaveLength(0);
    st.actor.send({ type: 'RESUME' });
    expect(st.state()).toBe('refreshing');
  });

  it('follows the catalog status: SUSPENDED and ERROR pause, ACTIVE resumes', () => {
    const st = start();
    st.actor.send({ type: 'CATALOG_CHANGED', facts: { ...facts, status: 'SUSPENDED' } });
    expect(st.state()).toBe('suspended');
    st.actor.send({ type: 'CATALOG_CHANGED', facts: { ...facts, status: 'ACTIVE' } });
    expect(st.state()).toBe('idle');
    expect(start({ status: 'ERROR' }).state()).toBe('suspended');
  });

  it('does not rebuild a suspended stream table until it is resumed', () => {
    const st = start({ status: 'SUSPENDED', needsReinit: true });
    expect(st.state()).toBe('suspended');
    st.actor.send({ type: 'RESUME' });
    expect(st.state()).toBe('reinit');
  });

  it('lets a refresh under way finish before suspending', async () => {
    const st = start();
    st.beDueWithChanges();
    st.actor.send({ type: 'SUSPEND' });
    expect(st.state()).toBe('refreshing');
    await st.refresh.last().succeed(DIFFERENTIAL);
    expect(st.state()).toBe('suspended');
  });

  it('leaves backoff for suspended at once, and retries after RESUME', async () => {
    const st = start();
    st.beDueWithChanges();
    await st.refresh.last().fail(new Error('boom'));
    st.actor.send({ type: 'SUSPEND' });
    expect(st.state()).toBe('suspended');
    st.clock.increment(FIRST_DELAY);
    expect(st.state()).toBe('suspended');
    st.actor.send({ type: 'RESUME' });
    expect(st.state()).toBe('refreshing');
  });
});

describe('stream-table machine: giving the stream table up', () => {
  it('releases it on LEASE_LOST during a refresh, and ignores that refresh when it reports', async () => {
    const st = start();
    st.beDueWithChanges();
    const call = st.refresh.last();
    st.actor.send({ type: 'LEASE_LOST' });
    expect(st.state()).toBe('released');
    expect(st.actor.getSnapshot().status).toBe('done');
    await call.succeed(DIFFERENTIAL);
    expect(st.state()).toBe('released');
    expect(st.emitted).toEqual([]);
  });

  it('releases it on LEASE_LOST from idle, backoff and suspended alike', async () => {
    const idle = start();
    idle.actor.send({ type: 'LEASE_LOST' });
    const backoff = start();
    backoff.beDueWithChanges();
    await backoff.refresh.last().fail(new Error('boom'));
    backoff.actor.send({ type: 'LEASE_LOST' });
    const suspended = start({ status: 'SUSPENDED' });
    suspended.actor.send({ type: 'LEASE_LOST' });
    expect([idle.state(), backoff.state(), suspended.state()]).toEqual(['released', 'released', 'released']);
  });

  it('releases it when a refresh finds its fencing epoch stale, without retrying', async () => {
    const st = start();
    st.beDueWithChanges();
    await st.refresh.last().fail(new StaleFencingEpoch('7'));
    expect(st.state()).toBe('released');
    st.clock.increment(60_000);
    expect(st.refresh.calls).toHaveLength(1);
  });

  it('stops for good on STOP', () => {
    const st = start();
    st.actor.send({ type: 'STOP' });
    expect(st.state()).toBe('stopped');
    expect(st.actor.getSnapshot().status).toBe('done');
  });
});
