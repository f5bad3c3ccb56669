/**
 * A semaphore counted in bytes: work asks for the memory it will hold and waits until that fits
 * under the limit beside what is already in flight, so memory is bounded by bytes rather than by a
 * number of files (four 256 MB files at once would not fit where four 500 KB ones do). A request
 * larger than the whole limit is granted once nothing else holds any, so it runs alone rather than
 * never. Requests are granted in the order they came: a large one is not starved by small ones.
 */
export interface ByteBudget {
  /** Resolves once `bytes` are granted; call the returned function exactly once to give them back. */
  acquire(bytes: number): Promise<() => void>;
  readonly inFlight: number;
  readonly limit: number;
}

export function createByteBudget(limit: number): ByteBudget {
  if (!(limit > 0)) throw new Error(`a byte budget needs a positive limit, not ${limit}`);
  let inFlight = 0;
  const waiting: Array<{ bytes: number; grant: () => void }> = [];
  const fits = (bytes: number) => inFlight === 0 || inFlight + bytes <= limit;
  const drain = () => {
    while (waiting.length > 0 && fits(waiting[0].bytes)) waiting.shift()!.grant();
  };
  const take = (bytes: number): (() => void) => {
    inFlight += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      inFlight -= bytes;
      drain();
    };
  };
  return {
    get inFlight() {
      return inFlight;
    },
    limit,
    acquire(bytes) {
      const size = Math.max(0, bytes);
      if (waiting.length === 0 && fits(size)) return Promise.resolve(take(size));
      return new Promise((resolve) => waiting.push({ bytes: size, grant: () => resolve(take(size)) }));
    },
  };
}
