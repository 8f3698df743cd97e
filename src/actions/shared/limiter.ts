// The one concurrency limiter of the actions: the fleet's instances (at most max_parallel, and
// per_host_parallel per compute host), the plan's inspections, the audit's cells and its Cinder
// look-ups. A queue, not a library: p-limit has no per-group bound and no "start nothing more".

export interface Limits<T> {
  /** At most this many items run at once. */
  limit: number;
  /** And at most `limit` of one group (a compute host) at once. */
  group?: { of: (item: T) => string; limit: number };
  /** Asked before each start: once true, nothing more starts and the running finish. */
  stopWhen?: () => boolean;
}

/**
 * Runs `run` over the items added, at most `limits.limit` at once. Items start in the order they
 * were added, except that an item whose group is full lets the next ones pass. After the first
 * failure nothing more starts; room() and done() reject with it.
 */
export class Limiter<T> {
  /** The most items that ran at once. */
  peak = 0;
  private readonly waiting: T[] = [];
  private running = 0;
  private readonly runningPerGroup = new Map<string, number>();
  private failure: { error: unknown } | undefined;
  private wake: Array<() => void> = [];

  constructor(
    private readonly run: (item: T) => Promise<void>,
    private readonly limits: Limits<T>,
  ) {}

  add(item: T): void {
    this.waiting.push(item);
    this.startWhatMayStart();
  }

  /** Resolves once an item added now would start at once: a producer's back pressure. */
  async room(): Promise<void> {
    while (this.failure === undefined && (this.waiting.length > 0 || this.running >= this.limits.limit)) await this.changed();
    this.throwFailure();
  }

  /** Resolves once nothing runs and nothing more will start, with the items never started (stopWhen). */
  async done(): Promise<T[]> {
    // Every finish starts what may start before it wakes us: nothing running means nothing more will.
    while (this.failure === undefined && this.running > 0) await this.changed();
    this.throwFailure();
    return [...this.waiting];
  }

  /** Resolves once nothing runs; never rejects (for a `finally`). */
  async settled(): Promise<void> {
    while (this.running > 0) await this.changed();
  }

  private startWhatMayStart(): void {
    while (this.failure === undefined && this.running < this.limits.limit && !this.limits.stopWhen?.()) {
      const index = this.waiting.findIndex((item) => this.groupHasRoom(item));
      if (index < 0) return;
      this.start(this.waiting.splice(index, 1)[0]!);
    }
  }

  private start(item: T): void {
    const group = this.limits.group?.of(item);
    this.running++;
    if (group !== undefined) this.runningPerGroup.set(group, (this.runningPerGroup.get(group) ?? 0) + 1);
    this.peak = Math.max(this.peak, this.running);
    this.run(item)
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => {
        this.running--;
        if (group !== undefined) this.runningPerGroup.set(group, this.runningPerGroup.get(group)! - 1);
        this.startWhatMayStart();
        this.notify();
      });
  }

  private groupHasRoom(item: T): boolean {
    const group = this.limits.group;
    return group === undefined || (this.runningPerGroup.get(group.of(item)) ?? 0) < group.limit;
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.wake.push(resolve));
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = [];
    for (const resolve of wake) resolve();
  }

  private throwFailure(): void {
    if (this.failure) throw this.failure.error;
  }
}

/** fn over every item, at most `limit` at once; the results in the items' order. */
export async function mapWithConcurrency<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  const limiter = new Limiter<number>(
    async (i) => {
      results[i] = await fn(items[i]!);
    },
    { limit },
  );
  items.forEach((_, i) => limiter.add(i));
  await limiter.done();
  return results;
}
