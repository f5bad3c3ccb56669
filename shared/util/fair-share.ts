/**
 * A semaphore shared fairly among lanes: at most `limit` pieces of work run at once across all lanes,
 * and a freed slot goes to the lanes with work waiting in turn, one piece each. Twelve downloads
 * started together then move side by side through the same few connections to Orthanc, instead of
 * the first ones taking every slot while the others wait, and a lone download still gets all of them.
 */
export interface FairShare {
  /** A new lane (one per download, say); it takes no slot until it runs something. */
  lane(): Lane;
  readonly running: number;
  readonly limit: number;
}

export interface Lane {
  /** Runs `work` in a slot of the share once this lane's turn comes; the slot is freed however it ends. */
  run<T>(work: () => Promise<T>): Promise<T>;
}

export function createFairShare(limit: number): FairShare {
  if (!Number.isInteger(limit) || limit < 1) throw new Error(`a fair share needs a positive whole limit, not ${limit}`);
  let running = 0;
  /** The lanes that have work waiting, in the order their next turn comes. */
  const turns: Array<Array<() => void>> = [];

  const release = () => {
    const waiting = turns.shift();
    if (!waiting) {
      running -= 1;
      return;
    }
    const start = waiting.shift()!;
    if (waiting.length > 0) turns.push(waiting);
    start();
  };

  return {
    get running() {
      return running;
    },
    limit,
    lane() {
      const waiting: Array<() => void> = [];
      return {
        async run(work) {
          if (running < limit) running += 1;
          else {
            // The slot is handed over by release() with `running` unchanged.
            await new Promise<void>((resolve) => {
              if (waiting.length === 0) turns.push(waiting);
              waiting.push(resolve);
            });
          }
          try {
            return await work();
          } finally {
            release();
          }
        },
      };
    },
  };
}
