import { ContentionError, PreconditionFailedError } from '../errors';
import type { ObjectStore, StoredObject } from './index';

/** How many times a read-modify-write is tried against newer content before it gives up. */
export const CAS_ATTEMPTS = 30;

/** The pause before attempt `attempt` (0-based): random, growing, so racing writers spread out (at most about 0.3 s). */
export function casBackoffMs(attempt: number): number {
  return attempt === 0 ? 0 : Math.random() * 10 * Math.min(attempt, 30);
}

/** What a change decides: write this body and answer `result`, or leave the document and answer `result`. */
export type CasChange<T> = { write: Uint8Array; result: T } | { keep: true; result: T };

/**
 * The one way a stored document is read, changed and written back: by compare-and-swap (If-Match
 * on the etag read, create-only when there was none), retried against the newer content when
 * another writer got there first, with one policy (CAS_ATTEMPTS, casBackoffMs). `change` sees the
 * stored object (null when absent) and may be called again for every attempt, so it must not
 * mutate anything outside. Throws ContentionError (409) with `contention`'s message when every
 * attempt lost; every other error is thrown as it is.
 */
export async function casUpdate<T>(
  store: ObjectStore,
  key: string,
  change: (stored: StoredObject | null) => Promise<CasChange<T>> | CasChange<T>,
  options: { contentType?: string; contention: string },
): Promise<T> {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const pause = casBackoffMs(attempt);
    if (pause) await new Promise((resolve) => setTimeout(resolve, pause));
    const stored = await store.get(key);
    const decided = await change(stored);
    if ('keep' in decided) return decided.result;
    try {
      await store.put(key, decided.write, { ...(stored ? { ifMatch: stored.etag } : { ifNoneMatch: true }), contentType: options.contentType ?? 'application/json' });
      return decided.result;
    } catch (error) {
      if (!(error instanceof PreconditionFailedError)) throw error;
    }
  }
  throw new ContentionError(`${options.contention} (${CAS_ATTEMPTS} compare-and-swap attempts lost to other writers)`);
}
