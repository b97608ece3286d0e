/**
 * Caching policy, kept apart from fetching: a value fetched on first use, trusted for `ttlMs`, then
 * fetched again. If a refresh fails after a good fetch, the last good value keeps being served
 * (with the error, so callers can say so) and the next attempt waits `retryMs`. Concurrent callers
 * share one fetch.
 */
export class RefreshingValue<T> {
  private value: { data: T } | null = null;
  private lastError: unknown = null;
  private nextCheck = 0;
  private inflight: Promise<void> | null = null;

  constructor(
    private readonly fetch: (previous: T | null) => Promise<T>,
    private readonly ttlMs: number,
    private readonly options: { retryMs?: number; now?: () => number } = {},
  ) {}

  /** The current value and, when it is stale because a refresh failed, that failure. */
  async get(): Promise<{ value: T; staleBecause: unknown }> {
    const now = this.now();
    if (!this.value || now >= this.nextCheck) {
      this.inflight ??= this.refresh().finally(() => {
        this.inflight = null;
      });
      await this.inflight;
    }
    if (!this.value) throw this.lastError;
    return { value: this.value.data, staleBecause: this.lastError };
  }

  /** The value held now, without fetching (null before the first successful fetch). */
  peek(): T | null {
    return this.value?.data ?? null;
  }

  private async refresh(): Promise<void> {
    try {
      const data = await this.fetch(this.value?.data ?? null);
      this.value = { data };
      this.lastError = null;
      this.nextCheck = this.now() + this.ttlMs;
    } catch (error) {
      this.lastError = error;
      this.nextCheck = this.now() + Math.min(this.ttlMs, this.options.retryMs ?? 5000);
    }
  }

  private now(): number {
    return this.options.now ? this.options.now() : Date.now();
  }
}
