import { ValidationError } from '../errors';

/** One stored object as read back. */
export interface StoredObject {
  body: Uint8Array;
  /** Opaque version tag; pass it back as `ifMatch` to replace exactly this content. */
  etag: string;
}

export interface PutOptions {
  /** Create only: fail with PreconditionFailedError when the key already exists. */
  ifNoneMatch?: boolean;
  /** Replace only this version: fail with PreconditionFailedError when the etag differs. */
  ifMatch?: string;
  contentType?: string;
  /**
   * Local folders only: false skips the fsync that makes a write survive a power cut (S3's writes
   * are durable either way). For data whose loss costs nothing but itself, such as prediction log
   * files, where a sync per file would cost more than writing it.
   */
  durable?: boolean;
}

export interface ListResult {
  /** Full keys directly below the prefix (or all below it when no delimiter is given). */
  keys: string[];
  /** With a delimiter: the distinct "sub-folders", each ending in the delimiter. */
  prefixes: string[];
}

/**
 * The object-store port: S3 and a local folder behave the same behind it, conditional writes
 * included, so the registry's guarantees (immutable versions, atomic aliases) hold on both.
 * Keys are relative, `/`-separated, and never contain `..` or empty segments.
 */
export interface ObjectStore {
  /** Human-readable location for messages, e.g. `s3://bucket/prefix` or a folder. */
  readonly location: string;
  /** Reads an object, or null when it does not exist. Throws StoreUnavailableError on failure. */
  get(key: string): Promise<StoredObject | null>;
  /** Writes an object whole (readers never see part of it); returns its new etag. */
  put(key: string, body: Uint8Array, options?: PutOptions): Promise<{ etag: string }>;
  /** Lists keys below a prefix; with a delimiter, groups deeper keys into prefixes. */
  list(prefix: string, options?: { delimiter?: string }): Promise<ListResult>;
  /** Deletes an object; deleting a missing object is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Whether this store honours create-only and compare-and-swap writes, checked (once per store)
   * with probe objects below `prefix`. The registry's guarantees rest on them: a store that
   * ignores them would let racing writers silently replace each other's versions and aliases.
   */
  checkConditionalWrites(prefix: string): Promise<ConditionalWriteSupport>;
}

/** The outcome of a conditional-write probe: what the store got wrong, if anything. */
export interface ConditionalWriteSupport {
  ok: boolean;
  /** One sentence per failed check, e.g. "ignores If-None-Match: * (a second create-only write replaced the object)". */
  problems: string[];
}

const SEGMENT = /^[A-Za-z0-9._=+-]+$/;

/** Refuses keys that could escape the store's root or collide with path syntax. */
export function assertValidKey(key: string): void {
  const parts = key.split('/');
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..' || !SEGMENT.test(part)) {
      throw new ValidationError(`Invalid object key "${key}"`);
    }
  }
}

/** Opens the store a registry URI names: `s3://bucket/prefix` or a local folder path. */
export async function openObjectStore(uri: string): Promise<ObjectStore> {
  if (uri.startsWith('s3://')) {
    const { S3ObjectStore, parseS3Uri } = await import('./s3');
    const { bucket, prefix } = parseS3Uri(uri);
    return new S3ObjectStore({ bucket, prefix });
  }
  const { FsObjectStore } = await import('./fs');
  return new FsObjectStore(uri.startsWith('file://') ? new URL(uri).pathname : uri);
}
