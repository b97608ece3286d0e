import {
  NoSuchKey,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import { PreconditionFailedError, StoreUnavailableError, ValidationError } from '../errors';
import { assertValidKey, type ConditionalWriteSupport, type ListResult, type ObjectStore, type PutOptions, type StoredObject } from './index';

let defaultClient: S3Client | undefined;

/**
 * The process-wide S3 client, built once. With a custom endpoint (`AWS_ENDPOINT_URL_S3` or
 * `AWS_ENDPOINT_URL`, e.g. a local S3 in tests) it uses path-style addressing and computes
 * checksums only when required, which local S3 servers need; against AWS it keeps the SDK's
 * default integrity checksums.
 */
export function defaultS3Client(): S3Client {
  if (!defaultClient) {
    const custom = Boolean(process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL);
    defaultClient = new S3Client({
      ...(custom
        ? {
            forcePathStyle: true,
            requestChecksumCalculation: 'WHEN_REQUIRED',
            responseChecksumValidation: 'WHEN_REQUIRED',
          }
        : {}),
      maxAttempts: 3,
    });
  }
  return defaultClient;
}

export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!match) throw new ValidationError(`Not an s3:// URI: ${uri}`);
  const prefix = match[2]!.replace(/\/+$/, '');
  if (prefix) assertValidKey(prefix);
  return { bucket: match[1]!, prefix };
}

/**
 * S3 as an object store. Create-only writes use `If-None-Match: *` and compare-and-swap uses
 * `If-Match: <etag>`, both answered by S3 with 412 when the precondition fails (or 409 when a
 * concurrent conditional write is in flight, which is the same outcome for the caller).
 */
export class S3ObjectStore implements ObjectStore {
  readonly location: string;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly client: S3Client;
  private readonly probes = new Map<string, Promise<ConditionalWriteSupport>>();

  constructor(options: { bucket: string; prefix?: string; client?: S3Client }) {
    this.bucket = options.bucket;
    this.prefix = options.prefix ? `${options.prefix.replace(/\/+$/, '')}/` : '';
    this.client = options.client ?? defaultS3Client();
    this.location = `s3://${this.bucket}/${this.prefix}`;
  }

  async get(key: string): Promise<StoredObject | null> {
    assertValidKey(key);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      const body = out.Body ? await out.Body.transformToByteArray() : new Uint8Array();
      return { body, etag: out.ETag ?? '' };
    } catch (error) {
      if (isStatus(error, 404) || error instanceof NoSuchKey) return null;
      throw this.unavailable(`read ${key}`, error);
    }
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<{ etag: string }> {
    assertValidKey(key);
    try {
      const out = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + key,
          Body: body,
          ContentLength: body.byteLength,
          ContentType: options.contentType ?? 'application/octet-stream',
          ...(options.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
          ...(options.ifMatch !== undefined ? { IfMatch: options.ifMatch } : {}),
        }),
      );
      return { etag: out.ETag ?? '' };
    } catch (error) {
      const conditional = options.ifNoneMatch || options.ifMatch !== undefined;
      if (conditional && (isStatus(error, 412) || isStatus(error, 409))) {
        throw new PreconditionFailedError(
          options.ifNoneMatch ? `${key} already exists` : `${key} changed since it was read`,
          { cause: error },
        );
      }
      throw this.unavailable(`write ${key}`, error);
    }
  }

  /**
   * Probes, once per prefix and store, that the store answers conditional writes as S3 does:
   * a create-only write of a new key succeeds and a second one is refused, and If-Match accepts the
   * ETag the store itself returned and refuses a wrong one. Some S3-compatible stores ignore these
   * headers (and would silently lose racing writes) or refuse their own quoted ETags. A store that
   * cannot be reached, or refuses the probe for permissions, fails with StoreUnavailableError and
   * is probed again next time.
   */
  checkConditionalWrites(prefix: string): Promise<ConditionalWriteSupport> {
    let probe = this.probes.get(prefix);
    if (!probe) {
      probe = this.probe(prefix).catch((error: unknown) => {
        this.probes.delete(prefix);
        throw error;
      });
      this.probes.set(prefix, probe);
    }
    return probe;
  }

  private async probe(prefix: string): Promise<ConditionalWriteSupport> {
    const key = `${prefix}_probe/${randomUUID()}`;
    assertValidKey(key);
    const problems: string[] = [];
    try {
      const created = await this.conditionalPut(key, { IfNoneMatch: '*' });
      if (!created.ok) {
        problems.push(`refuses a create-only write (If-None-Match: *) of a new key (answered ${created.answer})`);
        return { ok: false, problems };
      }
      let etag = created.etag;
      const again = await this.conditionalPut(key, { IfNoneMatch: '*' });
      if (again.ok) {
        problems.push('ignores If-None-Match: * (a second create-only write replaced the object)');
        etag = again.etag;
      } else if (!again.precondition) problems.push(`answers a second create-only write with ${again.answer} instead of 412 Precondition Failed`);
      const swapped = await this.conditionalPut(key, { IfMatch: etag });
      if (!swapped.ok) problems.push(`refuses a write with the ETag it returned itself in If-Match (answered ${swapped.answer})`);
      const stale = await this.conditionalPut(key, { IfMatch: '"0123456789abcdef0123456789abcdef"' });
      if (stale.ok) problems.push('ignores If-Match (a write with a wrong ETag replaced the object)');
      return { ok: problems.length === 0, problems };
    } finally {
      await this.delete(key).catch(() => undefined);
    }
  }

  /** One conditional PutObject; an answer other than success says how the store answered. */
  private async conditionalPut(
    key: string,
    condition: { IfNoneMatch?: string; IfMatch?: string },
  ): Promise<{ ok: true; etag: string } | { ok: false; precondition: boolean; answer: string }> {
    try {
      const body = new TextEncoder().encode(`loyalty-ml conditional write probe ${new Date().toISOString()}`);
      const out = await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Body: body, ContentLength: body.byteLength, ContentType: 'text/plain', ...condition }),
      );
      return { ok: true, etag: out.ETag ?? '' };
    } catch (error) {
      const status = statusOf(error);
      // No status (network), a permission refusal or a server error: the store is not usable now.
      if (status === undefined || status === 403 || status >= 500) throw this.unavailable(`probe conditional writes at ${key}`, error);
      return { ok: false, precondition: status === 412 || status === 409, answer: `${status} ${errorName(error) ?? ''}`.trim() };
    }
  }

  async list(prefix: string, options: { delimiter?: string } = {}): Promise<ListResult> {
    const keys: string[] = [];
    const prefixes: string[] = [];
    let token: string | undefined;
    try {
      do {
        const out = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            Delimiter: options.delimiter,
            ContinuationToken: token,
          }),
        );
        for (const item of out.Contents ?? []) if (item.Key) keys.push(item.Key.slice(this.prefix.length));
        for (const p of out.CommonPrefixes ?? []) if (p.Prefix) prefixes.push(p.Prefix.slice(this.prefix.length));
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
    } catch (error) {
      throw this.unavailable(`list ${prefix}`, error);
    }
    return { keys, prefixes };
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    } catch (error) {
      if (isStatus(error, 404)) return;
      throw this.unavailable(`delete ${key}`, error);
    }
  }

  private unavailable(what: string, cause: unknown): StoreUnavailableError {
    const detail = errorName(cause) ?? 'error';
    return new StoreUnavailableError(`S3 ${this.location}: could not ${what} (${detail})`, { cause });
  }
}

function statusOf(error: unknown): number | undefined {
  if (error instanceof S3ServiceException) return error.$metadata?.httpStatusCode;
  return (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

function isStatus(error: unknown, status: number): boolean {
  return statusOf(error) === status;
}

function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}
