/**
 * One app per Lambda instance (per process): created on first use and reused by every invocation,
 * as a cold start should. A failed creation is tried again on the next call instead of being
 * cached; tests replace the app with one built on their own stores.
 */
export interface Instance<T> {
  get(): Promise<T>;
  set(app: T | undefined): void;
}

export function perInstance<T>(create: () => Promise<T>): Instance<T> {
  let current: Promise<T> | undefined;
  return {
    get() {
      current ??= create().catch((error: unknown) => {
        current = undefined;
        throw error;
      });
      return current;
    },
    set(app) {
      current = app === undefined ? undefined : Promise.resolve(app);
    },
  };
}
