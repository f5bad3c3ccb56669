/**
 * Timer listeners as singletons across instances, as the WebJobs SDK runs them
 * (`[Singleton(Mode = Listener)]`): an instance starts a timer's listener only while it holds a blob
 * lease on `azure-webjobs-hosts/locks/{hostId}/Host.Functions.{name}.Listener` in the app's storage
 * account. The lease lasts `singleton.listenerLockPeriod` (60 s, 15–60 s allowed) and is renewed at
 * half that; an instance that did not get it retries every `singleton.listenerLockRecoveryPollingInterval`
 * (60 s, at least 15 s), so when the holder stops (it releases the lease) or dies (the lease lapses),
 * another instance with the same host id takes the timer over. Instances with different host ids never
 * share locks, as in the host.
 */
import { BlobServiceClient, type BlobLeaseClient, type ContainerClient } from '@azure/storage-blob';

export interface SingletonSettings {
  listenerLockPeriodMs: number;
  listenerLockRecoveryPollingIntervalMs: number;
}

/** What a singleton listener starts and stops while it holds the lock (a TimerListener). */
export interface InnerListener {
  start(): Promise<void>;
  stop(): Promise<void>;
}

const MIN_RENEWAL_INTERVAL_MS = 1_000;

function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number }).statusCode;
}

/** One lock blob and this instance's lease on it (BlobLeaseDistributedLockManager). */
export class BlobLeaseLock {
  private lease?: BlobLeaseClient;

  constructor(
    private readonly container: ContainerClient,
    readonly lockId: string,
    private readonly periodSeconds: number,
  ) {}

  static forListener(connectionString: string, hostId: string, functionName: string, periodMs: number): BlobLeaseLock {
    const container =
      BlobServiceClient.fromConnectionString(connectionString).getContainerClient('azure-webjobs-hosts');
    return new BlobLeaseLock(
      container,
      `${hostId}/Host.Functions.${functionName}.Listener`,
      Math.round(periodMs / 1000),
    );
  }

  private blob() {
    return this.container.getBlockBlobClient(`locks/${this.lockId}`);
  }

  /** One attempt: true when this instance now holds the lease, false when another one does. */
  async tryAcquire(): Promise<boolean> {
    const lease = this.blob().getBlobLeaseClient();
    try {
      await lease.acquireLease(this.periodSeconds);
    } catch (error) {
      if (statusOf(error) === 409) return false;
      if (statusOf(error) !== 404) throw error;
      // The blob (or its container) does not exist yet: create it empty, then try once more.
      await this.container.createIfNotExists();
      try {
        await this.blob().upload('', 0, { conditions: { ifNoneMatch: '*' } });
      } catch (created) {
        if (statusOf(created) !== 409 && statusOf(created) !== 412) throw created;
      }
      try {
        await lease.acquireLease(this.periodSeconds);
      } catch (again) {
        if (statusOf(again) === 409) return false;
        throw again;
      }
    }
    this.lease = lease;
    return true;
  }

  /** Renews the lease: 'renewed', 'retry' (storage unavailable: try again sooner) or 'lost' (another instance may hold it). */
  async renew(): Promise<'renewed' | 'retry' | 'lost'> {
    if (!this.lease) return 'lost';
    try {
      await this.lease.renewLease();
      return 'renewed';
    } catch (error) {
      const status = statusOf(error);
      return status === undefined || status >= 500 ? 'retry' : 'lost';
    }
  }

  async release(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    // Released or expired already, or someone else's now: nothing to release.
    await lease?.releaseLease().catch(() => undefined);
  }
}

export class SingletonListener {
  private stopped = false;
  private holding = false;
  private refusedOnce = false;
  private recovery?: NodeJS.Timeout;
  private renewal?: NodeJS.Timeout;
  /** Start, stop, takeover and loss of the lock run one after another. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly lock: BlobLeaseLock,
    private readonly inner: InnerListener,
    private readonly settings: SingletonSettings,
    private readonly log: (line: string) => void,
  ) {}

  /** Tries once; without the lock the listener is not started, and a recovery timer keeps trying. */
  async start(): Promise<void> {
    await this.serialise(() => this.attempt());
  }

  private serialise(run: () => Promise<void>): Promise<void> {
    const result = this.chain.then(run);
    this.chain = result.catch(() => undefined);
    return result;
  }

  private async attempt(): Promise<void> {
    if (this.stopped || this.holding) return;
    let acquired = false;
    try {
      acquired = await this.lock.tryAcquire();
    } catch (error) {
      this.log(`WARN Singleton lock (${this.lock.lockId}): ${(error as Error).message}`);
    }
    if (!acquired) {
      // Said once; the host logs the retries at debug level only.
      if (!this.refusedOnce) this.log(`Unable to acquire Singleton lock (${this.lock.lockId}).`);
      this.refusedOnce = true;
      this.scheduleRecovery();
      return;
    }
    this.holding = true;
    this.log(`Singleton lock acquired (${this.lock.lockId})`);
    this.scheduleRenewal(this.settings.listenerLockPeriodMs / 2);
    try {
      await this.inner.start();
    } catch (error) {
      // The listener could not start (storage unreachable for its schedule status): give the lock back.
      this.holding = false;
      clearTimeout(this.renewal);
      await this.lock.release();
      throw error;
    }
  }

  private scheduleRecovery(): void {
    if (this.stopped) return;
    this.recovery = setTimeout(() => {
      void this.serialise(() => this.attempt()).catch((e: Error) => {
        this.log(`WARN Singleton lock (${this.lock.lockId}): ${e.message}`);
        this.scheduleRecovery();
      });
    }, this.settings.listenerLockRecoveryPollingIntervalMs);
  }

  /**
   * Renewal at half the lease period; after a failed renewal sooner and sooner (LinearSpeedupStrategy).
   * A lease that is lost (the host paused longer than the period, or storage was reset) stops the
   * listener: the real host restarts itself then; here the instance goes back to trying for the lock.
   */
  private scheduleRenewal(delayMs: number): void {
    if (this.stopped) return;
    this.renewal = setTimeout(() => {
      void this.lock.renew().then((outcome) => {
        if (outcome === 'renewed') return this.scheduleRenewal(this.settings.listenerLockPeriodMs / 2);
        if (outcome === 'retry') {
          this.log(`WARN Singleton lock renewal failed for blob '${this.lock.lockId}'; retrying`);
          return this.scheduleRenewal(Math.max(MIN_RENEWAL_INTERVAL_MS, delayMs / 2));
        }
        this.log(
          `ERROR Singleton lock renewal failed for blob '${this.lock.lockId}': the lease was lost; listener stopped`,
        );
        void this.serialise(async () => {
          if (!this.holding) return;
          this.holding = false;
          await this.inner.stop();
          this.scheduleRecovery();
        });
      });
    }, delayMs);
  }

  /** Stops the listener (its running invocation ends first), then releases the lease for another instance. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.recovery);
    clearTimeout(this.renewal);
    await this.serialise(async () => {
      if (!this.holding) return;
      this.holding = false;
      await this.inner.stop();
      await this.lock.release();
      this.log(`Singleton lock released (${this.lock.lockId})`);
    });
  }
}
