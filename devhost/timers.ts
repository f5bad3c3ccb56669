/**
 * Timer triggers as the host runs them: NCRONTAB (six fields, or five) or a TimeSpan, in local time;
 * runs never overlap (the next occurrence is computed after a run ends); schedule status kept in blob
 * `azure-webjobs-hosts/timers/{hostId}/Host.Functions.{name}/status`, so an occurrence missed while
 * the host was down fires once at start-up with `isPastDue: true`; otherwise `runOnStartup` fires.
 * The monitor is off for schedules more frequent than once a minute, as in the host.
 */
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { CronExpressionParser } from 'cron-parser';
import { parseTimeSpan } from './settings';

export interface ScheduleStatus {
  Last: string;
  Next: string;
  LastUpdated: string;
}

export interface TimerInput {
  Schedule: { AdjustForDST: boolean };
  ScheduleStatus: ScheduleStatus | null;
  IsPastDue: boolean;
}

export interface Schedule {
  next(after: Date): Date;
  text: string;
}

export function parseSchedule(expression: string, env: NodeJS.ProcessEnv = process.env): Schedule {
  // %Setting% names an app setting holding the schedule.
  const resolved = expression.replace(/%([^%]+)%/g, (_m, name: string) => {
    const value = env[name];
    if (value === undefined) throw new Error(`Timer schedule refers to app setting '${name}', which is not set`);
    return value;
  });
  if (/^(\d+\.)?\d{1,2}:\d{2}:\d{2}$/.test(resolved.trim())) {
    const interval = parseTimeSpan(resolved.trim(), 'schedule');
    if (interval <= 0) throw new Error(`Timer interval must be positive: ${resolved}`);
    return { text: resolved, next: (after) => new Date(after.getTime() + interval) };
  }
  const fields = resolved.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6)
    throw new Error(
      `'${resolved}' is not a valid NCRONTAB expression (six fields: second minute hour day month day-of-week)`,
    );
  const cron = fields.length === 5 ? `0 ${resolved.trim()}` : resolved.trim();
  CronExpressionParser.parse(cron); // validate now, not at the first occurrence
  return {
    text: resolved,
    next: (after) =>
      CronExpressionParser.parse(cron, { currentDate: new Date(after.getTime() + 1) })
        .next()
        .toDate(),
  };
}

export function usesMonitor(schedule: Schedule, useMonitor: boolean | undefined): boolean {
  if (useMonitor === false) return false;
  const a = schedule.next(new Date());
  const b = schedule.next(a);
  return b.getTime() - a.getTime() >= 60_000;
}

export class ScheduleMonitor {
  private readonly container: ContainerClient;
  private ready?: Promise<unknown>;

  constructor(
    connectionString: string,
    private readonly hostId: string,
  ) {
    this.container = BlobServiceClient.fromConnectionString(connectionString).getContainerClient('azure-webjobs-hosts');
  }

  private blob(name: string) {
    return this.container.getBlockBlobClient(`timers/${this.hostId}/Host.Functions.${name}/status`);
  }

  async read(name: string): Promise<ScheduleStatus | undefined> {
    try {
      const buffer = await this.blob(name).downloadToBuffer();
      return JSON.parse(buffer.toString('utf8')) as ScheduleStatus;
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw error;
    }
  }

  async write(name: string, status: ScheduleStatus): Promise<void> {
    this.ready ??= this.container.createIfNotExists();
    await this.ready;
    const body = JSON.stringify(status);
    await this.blob(name).upload(body, Buffer.byteLength(body), {
      blobHTTPHeaders: { blobContentType: 'application/json' },
    });
  }
}

/** .NET's default(DateTime), what the host records as `Last` before a first run. */
const NEVER = '0001-01-01T00:00:00.000Z';
/** setTimeout's ceiling (2^31-1 ms, about 24.8 days); longer waits are chained. */
const MAX_TIMEOUT_MS = 2_147_483_647;

export class TimerListener {
  private stopped = false;
  private timer?: NodeJS.Timeout;
  /** Every run, scheduled or manual, chains on this: runs never overlap (the listener's semaphore). */
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly name: string,
    private readonly schedule: Schedule,
    private readonly options: { runOnStartup: boolean; monitor?: ScheduleMonitor },
    private readonly invoker: (input: TimerInput) => Promise<void>,
    private readonly log: (line: string) => void,
  ) {}

  /** Starts (again, after a stop: a singleton timer whose lock came back to this instance). */
  async start(): Promise<void> {
    this.stopped = false;
    const now = new Date();
    const status = this.options.monitor ? await this.options.monitor.read(this.name) : undefined;
    if (status && now.getTime() > Date.parse(status.Next)) {
      this.log(`Timer '${this.name}' missed its occurrence at ${status.Next}; running now (isPastDue)`);
      await this.serialise(() => this.fire(new Date(status.Next), true, status));
    } else if (this.options.runOnStartup) {
      await this.serialise(() => this.fire(now, false, status ?? null));
    } else if (this.options.monitor && !status) {
      await this.options.monitor.write(this.name, {
        Last: NEVER,
        Next: this.schedule.next(now).toISOString(),
        LastUpdated: now.toISOString(),
      });
    }
    this.arm();
  }

  private arm(): void {
    if (this.stopped) return;
    const next = this.schedule.next(new Date());
    const wait = (): void => {
      if (this.stopped) return;
      const remaining = next.getTime() - Date.now();
      if (remaining > MAX_TIMEOUT_MS) {
        this.timer = setTimeout(wait, MAX_TIMEOUT_MS);
        return;
      }
      this.timer = setTimeout(
        () => {
          // The next occurrence is computed only after this run ends, so slow runs skip occurrences.
          this.serialise(() => this.fire(next, false))
            .catch((e: Error) => this.log(`Timer '${this.name}': ${e.message}`))
            .finally(() => this.arm());
        },
        Math.max(0, remaining),
      );
    };
    wait();
  }

  private serialise(run: () => Promise<void>): Promise<void> {
    const result = this.running.then(run);
    this.running = result.catch(() => undefined);
    return result;
  }

  private async fire(
    occurrence: Date,
    isPastDue: boolean,
    status?: ScheduleStatus | null,
    record = true,
  ): Promise<void> {
    const next = this.schedule.next(new Date(Math.max(Date.now(), occurrence.getTime())));
    const current = status ?? (this.options.monitor ? ((await this.options.monitor.read(this.name)) ?? null) : null);
    // During an invocation, ScheduleStatus.Next is the current occurrence (as in the host).
    const input: TimerInput = {
      Schedule: { AdjustForDST: true },
      ScheduleStatus: this.options.monitor
        ? { Last: current?.Last ?? NEVER, Next: occurrence.toISOString(), LastUpdated: current?.LastUpdated ?? NEVER }
        : null,
      IsPastDue: isPastDue,
    };
    try {
      await this.invoker(input);
    } catch {
      // Errors do not stop the schedule; the invocation already logged the failure.
    }
    if (this.options.monitor && record)
      await this.options.monitor
        .write(this.name, {
          Last: occurrence.toISOString(),
          Next: next.toISOString(),
          LastUpdated: new Date().toISOString(),
        })
        .catch((e: Error) => this.log(`Timer '${this.name}': cannot record schedule status: ${e.message}`));
  }

  /** Invokes now, outside the schedule (admin API), never overlapping a scheduled run; the recorded schedule is left alone. */
  runNow(): Promise<void> {
    return this.serialise(() => this.fire(new Date(), false, undefined, false));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
