/**
 * Forwarding per destination (shared/pipeline/destinationRunner.ts, destinations.ts, steps/forward.ts)
 * through the step runner, the in-memory ledger and queues and a clock the test moves: the fan-out into
 * one message per destination, a destination that is down retried on its own while the other is sent
 * at once, "stuck" after the setting (with its alert), completion and failure decided exactly once when
 * destinations finish together, and redelivered or duplicate messages that never send twice.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { stepRecord, type Job } from '../../shared/pipeline/job';
import {
  countForwarding,
  destinationsOf,
  withDestinationViews,
  type DestinationRecord,
} from '../../shared/pipeline/destinations';
import { QUEUES } from '../../shared/pipeline/messages';
import {
  forwardRetryDelaySeconds,
  MAX_RETRY_DELAY_SECONDS,
  type ForwardDeps,
} from '../../shared/pipeline/steps/forward';
import { destinationStuckAlert } from '../../shared/alerts/events';
import { forwardHarness, type ForwardHarness } from '../support/forward-harness';

const INSTANCES = [
  { ID: 'id-0', sop: '1.2.0' },
  { ID: 'id-1', sop: '1.2.1' },
];

const orthanc = {
  listInstances: async () =>
    INSTANCES.map((i) => ({
      ID: i.ID,
      Type: 'Instance' as const,
      FileSize: 10,
      MainDicomTags: { SOPInstanceUID: i.sop },
      ParentSeries: 's',
    })),
  instanceFile: async (id: string) => Readable.from([Buffer.from(`bytes of ${id}`)]),
} as unknown as ForwardDeps['orthanc'];

/** A STOW-RS server that stores everything while `up`, and refuses the connection otherwise. */
function server(name: string, options: { up?: boolean; gate?: Promise<void> } = {}) {
  const peer = {
    up: options.up ?? true,
    calls: 0,
    stored: [] as string[],
    async store(parts: readonly { sopInstanceUid: string }[]) {
      peer.calls += 1;
      await options.gate;
      if (!peer.up) throw new Error(`connect ECONNREFUSED 127.0.0.1:4242 (${name})`);
      peer.stored.push(...parts.map((p) => p.sopInstanceUid));
      return { stored: parts.map((p) => p.sopInstanceUid), failed: new Map<string, string>() };
    },
  };
  return peer;
}

const records = async (h: ForwardHarness) => destinationsOf(await h.stored());
const fanOutMessage = (h: ForwardHarness) => ({ jobId: h.job.id, step: 'forward' });

describe('forward fans out one message per destination', () => {
  it('sends the destination that is up at once, retries the one that is down on its own, then completes', async () => {
    const up = server('UP');
    const down = server('DOWN', { up: false });
    const stuck: Array<{ name: string; record: DestinationRecord }> = [];
    const h = await forwardHarness({
      destinations: ['UP', 'DOWN'],
      forward: {
        orthanc,
        dicomweb: { UP: up, DOWN: down },
        maxAttempts: 20,
        stuckAfterMs: 10_000,
        onStuck: async (_job, name, record) => void stuck.push({ name, record }),
      },
    });

    assert.equal(await h.run(fanOutMessage(h)), 'fanned-out');
    const fanned = h.handedOn.map((m) => m.message);
    assert.deepEqual(fanned, [
      { jobId: h.job.id, step: 'forward', destination: 'UP', attempt: 1 },
      { jobId: h.job.id, step: 'forward', destination: 'DOWN', attempt: 1 },
    ]);
    const queued = await h.stored();
    assert.equal(stepRecord(queued, 'forward').status, 'waiting');
    assert.deepEqual(
      Object.values(destinationsOf(queued)).map((r) => [r.status, r.attempts]),
      [
        ['pending', 0],
        ['pending', 0],
      ],
    );

    const t0 = h.clock.at;
    assert.deepEqual((await h.deliver()).sort(), ['retrying', 'sent']);
    let r = await records(h);
    assert.equal(r.UP.status, 'sent');
    assert.equal(r.UP.sentAt, new Date(t0).toISOString(), 'the destination that is up is sent at once');
    assert.equal(r.UP.durationMs, 0);
    assert.deepEqual([r.DOWN.status, r.DOWN.attempts], ['pending', 1]);
    assert.match(r.DOWN.error!, /ECONNREFUSED/);
    assert.equal(r.DOWN.nextRetryAt, new Date(t0 + 1000).toISOString());
    assert.deepEqual(up.stored.sort(), ['1.2.0', '1.2.1']);
    assert.equal((await h.stored()).status, 'running');
    assert.deepEqual(h.ended, []);

    // Retries with growing delays (1, 2, 4, 8 s ...): stuck once 10 s have passed since it was queued.
    const delays: number[] = [];
    while ((await records(h)).DOWN.status !== 'stuck') {
      const next = h.waiting()[0];
      delays.push(Math.round((next.visibleAt - h.clock.at) / 1000));
      await h.deliverNext();
    }
    assert.deepEqual(delays, [1, 2, 4, 8]);
    r = await records(h);
    assert.equal(r.DOWN.attempts, 5);
    assert.equal(stuck.length, 1, 'one alert when it becomes stuck');
    assert.equal(stuck[0].name, 'DOWN');
    assert.equal(up.calls, 1, 'the destination that was sent is never sent again');

    // Still stuck after another failed attempt: no second alert.
    await h.deliverNext();
    assert.equal((await records(h)).DOWN.status, 'stuck');
    assert.equal(stuck.length, 1);

    down.up = true;
    const before = h.clock.at;
    await h.deliverNext();
    const done = await h.stored();
    r = destinationsOf(done);
    assert.equal(done.status, 'succeeded');
    assert.equal(h.ended.length, 1);
    assert.deepEqual([r.DOWN.status, r.DOWN.attempts, r.DOWN.error], ['sent', 7, undefined]);
    const forward = stepRecord(done, 'forward');
    assert.equal(forward.status, 'succeeded');
    assert.equal(forward.endedAt, r.DOWN.sentAt, "the step's end is when the last destination was sent");
    assert.ok(Date.parse(r.DOWN.sentAt!) >= before);
    assert.equal(r.DOWN.durationMs, Date.parse(r.DOWN.sentAt!) - t0);
    assert.equal(forward.instances, 2);
    assert.equal(up.calls, 1);
  });

  it('shows and counts a destination waiting longer than the setting as stuck, whoever looked last', async () => {
    const h = await forwardHarness({
      destinations: ['UP', 'DOWN'],
      forward: { orthanc, dicomweb: { UP: server('UP'), DOWN: server('DOWN', { up: false }) }, stuckAfterMs: 60_000 },
    });
    await h.run(fanOutMessage(h));
    await h.deliver();
    const job = await h.stored();
    const at = (ms: number) => new Date(h.clock.at + ms);
    assert.equal(destinationsOf(withDestinationViews(job, at(0), 60_000)).DOWN.status, 'pending');
    const later = destinationsOf(withDestinationViews(job, at(61_000), 60_000));
    assert.deepEqual([later.UP.status, later.DOWN.status], ['sent', 'stuck']);
    assert.equal(destinationsOf(job).DOWN.status, 'pending', 'the stored record is left as it is');
    assert.deepEqual(countForwarding([job], at(61_000), 60_000), {
      pending: 0,
      sending: 0,
      stuck: 1,
      byDestination: { DOWN: { pending: 0, sending: 0, stuck: 1 } },
      stuckJobs: [job.id],
    });
  });

  it('fails the job once, with the reason, when a destination has used up its attempts', async () => {
    const h = await forwardHarness({
      destinations: ['UP', 'DOWN'],
      forward: { orthanc, dicomweb: { UP: server('UP'), DOWN: server('DOWN', { up: false }) }, maxAttempts: 3 },
    });
    await h.run(fanOutMessage(h));
    await h.deliver();
    await h.deliverNext();
    assert.deepEqual(await h.deliverNext(), ['failed']);
    const failed = await h.stored();
    assert.equal(failed.status, 'failed');
    assert.match(failed.error!, /^forward: destination DOWN: connect ECONNREFUSED .* \(after 3 attempts\)$/);
    const r = destinationsOf(failed);
    assert.deepEqual([r.UP.status, r.DOWN.status, r.DOWN.attempts], ['sent', 'failed', 3]);
    assert.equal(h.ended.length, 1);
    assert.deepEqual(h.waiting(), [], 'nothing more is scheduled');
  });
});

describe('destinations that finish together', () => {
  it('complete the step exactly once and hand on the next step once', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const peers = { A: server('A', { gate }), B: server('B', { gate }), C: server('C', { gate }) };
    const h = await forwardHarness({
      destinations: ['A', 'B', 'C'],
      thenPublish: true,
      forward: { orthanc, dicomweb: peers },
    });
    await h.run(fanOutMessage(h));
    const delivering = h.deliver();
    await new Promise((resolve) => setTimeout(resolve, 20));
    open();
    const outcomes = await delivering;
    assert.deepEqual(outcomes.filter((o) => o === 'done').length, 1, `one completes: ${outcomes.join(', ')}`);
    assert.deepEqual(outcomes.filter((o) => o === 'sent').length, 2);
    assert.ok(h.jobs.conflicts > 0, 'the three records were written concurrently (ETag conflicts retried)');
    const job = await h.stored();
    assert.deepEqual(
      Object.values(destinationsOf(job)).map((r) => r.status),
      ['sent', 'sent', 'sent'],
    );
    assert.equal(stepRecord(job, 'forward').status, 'succeeded');
    assert.equal(job.currentStep, 'publish');
    const publish = h.handedOn.filter((m) => m.queue === QUEUES.step('publish'));
    assert.deepEqual(publish, [{ queue: 'step-publish', message: { jobId: job.id, step: 'publish' } }]);
  });

  it('end the job once when one fails as the other is sent', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const h = await forwardHarness({
      destinations: ['A', 'B'],
      forward: { orthanc, dicomweb: { A: server('A', { gate }), B: server('B', { gate, up: false }) }, maxAttempts: 1 },
    });
    await h.run(fanOutMessage(h));
    const delivering = h.deliver();
    await new Promise((resolve) => setTimeout(resolve, 20));
    open();
    assert.deepEqual((await delivering).sort(), ['failed', 'sent']);
    const job = await h.stored();
    assert.equal(job.status, 'failed');
    assert.deepEqual(
      h.ended.map((j) => j.status),
      ['failed'],
      'the job ends once',
    );
    const r = destinationsOf(job);
    assert.deepEqual([r.A.status, r.B.status], ['sent', 'failed']);
  });
});

describe('redelivered and duplicate messages', () => {
  async function oneSentOneDown() {
    const up = server('UP');
    const down = server('DOWN', { up: false });
    const h = await forwardHarness({
      destinations: ['UP', 'DOWN'],
      forward: { orthanc, dicomweb: { UP: up, DOWN: down }, maxAttempts: 10 },
    });
    await h.run(fanOutMessage(h));
    await h.deliver();
    return { h, up, down };
  }

  it('a destination that was sent is not sent again by its redelivered message', async () => {
    const { h, up } = await oneSentOneDown();
    assert.equal(await h.run({ jobId: h.job.id, step: 'forward', destination: 'UP', attempt: 1 }), 'ignored');
    assert.equal(up.calls, 1);
  });

  it('a redelivered step message queues only what is not sent, keeping every record', async () => {
    const { h, up } = await oneSentOneDown();
    const before = await records(h);
    h.handedOn.length = 0;
    const sentBefore = h.queues.sent.length;
    assert.equal(await h.run(fanOutMessage(h)), 'fanned-out');
    const after = await records(h);
    assert.deepEqual(after.UP, before.UP);
    assert.equal(after.DOWN.attempts, 1);
    const queued = h.queues.sent.slice(sentBefore).map((m) => [m.message, m.delaySeconds]);
    assert.deepEqual(queued, [[{ jobId: h.job.id, step: 'forward', destination: 'DOWN', attempt: 2 }, 1]]);
    h.clock.advance(1000);
    await h.deliver();
    assert.equal(up.calls, 1, 'the sent destination stays sent');
    assert.equal((await records(h)).DOWN.attempts, 2, 'the duplicate attempt ran once');
  });

  it("an earlier attempt's duplicate does nothing once a later attempt was made", async () => {
    const { h, down } = await oneSentOneDown();
    await h.deliverNext(); // attempt 2
    const calls = down.calls;
    assert.equal(await h.run({ jobId: h.job.id, step: 'forward', destination: 'DOWN', attempt: 1 }), 'ignored');
    assert.equal(down.calls, calls);
  });

  it("a failed attempt's message redelivered before its follow-up was sent makes the next attempt once it is overdue", async () => {
    const { h, down } = await oneSentOneDown();
    const lost = { jobId: h.job.id, step: 'forward', destination: 'DOWN', attempt: 1 } as never;
    // The follow-up (attempt 2, due in 1 s) is taken off the queue: the host died before sending it.
    const followUp = h.queues.sent.findIndex((m) => (m.message as { attempt?: number }).attempt === 2);
    h.queues.sent.splice(followUp, 1);
    assert.equal(await h.run(lost), 'recheck', 'too early to tell a lost follow-up from one on its way');
    const recheck = h.queues.sent.at(-1)!;
    assert.deepEqual(recheck.message, lost);
    h.clock.at = recheck.visibleAt;
    down.up = true;
    assert.equal(await h.run(lost), 'done');
    const r = await records(h);
    assert.deepEqual([r.DOWN.status, r.DOWN.attempts], ['sent', 2]);
  });

  it('a destination whose sender died (stale heartbeat) is taken over; a live one is left alone', async () => {
    const { h, down } = await oneSentOneDown();
    h.clock.advance(1000);
    await h.jobs.update(h.job.id, (j) => {
      const detail = stepRecord(j, 'forward').detail as { destinations: Record<string, DestinationRecord> };
      Object.assign(detail.destinations.DOWN, {
        status: 'sending',
        attempts: 2,
        heartbeatAt: new Date(h.clock.at).toISOString(),
      });
    });
    const message = { jobId: h.job.id, step: 'forward', destination: 'DOWN', attempt: 2 } as never;
    assert.equal(await h.run(message), 'busy');
    assert.equal(h.queues.sent.at(-1)!.delaySeconds, 15);
    h.clock.advance(121_000);
    down.up = true;
    assert.equal(await h.run(message), 'done');
    assert.ok(h.logs.some((l) => /DOWN: the host stopped while sending \(attempt 2\)/.test(l)));
    assert.equal((await records(h)).DOWN.attempts, 2);
  });

  it('polls an Orthanc C-STORE job with the same attempt until it succeeds', async () => {
    const polled: string[] = [];
    let state = 'Running';
    const h = await forwardHarness({
      destinations: ['PACS'],
      forward: {
        orthanc: {
          putModality: async () => undefined,
          storeToModalityAsync: async () => 'orthanc-job-1',
          getJob: async (id: string) => {
            polled.push(id);
            return { State: state, Progress: 50 };
          },
        } as unknown as ForwardDeps['orthanc'],
        modalities: async () => ({ PACS: { AET: 'PACS', Host: '127.0.0.1', Port: 104 } }),
      },
    });
    await h.run(fanOutMessage(h));
    assert.deepEqual(await h.deliver(), ['polling']);
    assert.deepEqual(
      [(await records(h)).PACS.status, (await records(h)).PACS.orthancJob],
      ['sending', 'orthanc-job-1'],
    );
    assert.deepEqual(await h.deliverNext(), ['polling']);
    state = 'Success';
    assert.deepEqual(await h.deliverNext(), ['done']);
    assert.deepEqual(polled, ['orthanc-job-1', 'orthanc-job-1']);
    const job: Job = await h.stored();
    assert.equal(job.status, 'succeeded');
    assert.equal(destinationsOf(job).PACS.attempts, 1);
  });
});

describe('forward retry delays', () => {
  it('grow from the poll interval and are capped', () => {
    assert.deepEqual(
      [1, 2, 3, 4].map((a) => forwardRetryDelaySeconds(5, a)),
      [5, 10, 20, 40],
    );
    assert.equal(forwardRetryDelaySeconds(5, 40), MAX_RETRY_DELAY_SECONDS);
  });
});

describe('the stuck alert', () => {
  it('names the destination, the job and the attempts, under its own subject, and nothing of the patient', () => {
    const alert = destinationStuckAlert({ id: 'job-1', ruleId: 'to-peers' }, 'LATER', {
      aet: 'LATER_AET',
      host: '10.0.0.9',
      port: 104,
      attempts: 4,
      waitedMinutes: 31,
      reason: 'DicomAssociation - connecting to AET "LATER_AET": Connection refused',
    });
    assert.equal(alert.kind, 'destination-down');
    assert.equal(alert.subject, 'LATER (stuck)', 'not held back by the C-ECHO alert of the same destination');
    assert.match(alert.title, /^Destination LATER is stuck: job job-1 \(rule to-peers\) has waited 31 min$/);
    assert.match(alert.text, /^Not sent after 4 attempt\(s\): DicomAssociation/);
    assert.deepEqual(alert.fields, {
      destination: 'LATER',
      aet: 'LATER_AET',
      jobId: 'job-1',
      ruleId: 'to-peers',
      attempts: 4,
    });
  });
});
