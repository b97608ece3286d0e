import { createHash } from 'node:crypto';
import { tableFromIPC, type Table } from 'apache-arrow';
import { writeArrowStream, type ArrowColumn } from '../arrow-stream';
import { z } from 'zod';
import { FEATURES } from '../catalog';
import { IntegrityError } from '../errors';
import type { FeatureBatch } from '../warehouse/index';

/**
 * A chunk of a segment run: its customers in id order with the features the planner's one scan
 * read for them. Workers score chunks without a warehouse connection. A chunk travels in the
 * worker's payload while it fits (base64 of the float64 matrix: exact, and about 110 KB for 1,000
 * customers), otherwise as an Apache Arrow IPC file in the results store.
 *
 * Arrow IPC rather than Parquet: a chunk is written once and read once whole, so Parquet's
 * encodings and statistics buy nothing, and an Arrow column of float64 is read back as a
 * Float64Array without parsing. Written by lib/arrow-stream.ts; read by the `apache-arrow`
 * package, the Apache project's own implementation (pure JavaScript, no native or WebAssembly part
 * to ship in the worker's zip).
 */
export type FeatureChunk = FeatureBatch;

/** Cuts a scan's batches into chunks of `size` customers (the last may be smaller). */
export async function* cutChunks(batches: AsyncIterable<FeatureBatch>, size: number): AsyncGenerator<FeatureChunk> {
  const width = FEATURES.length;
  let pending: FeatureBatch[] = [];
  // Rows of pending[0] already taken: a batch of many chunks is read in place, not sliced per chunk.
  let offset = 0;
  let pendingRows = 0;
  const take = (rows: number): FeatureChunk => {
    const out: FeatureChunk = { ids: new Array<string>(rows), features: new Float64Array(rows * width), found: new Uint8Array(rows), asOf: new Array<string | null>(rows) };
    let at = 0;
    while (at < rows) {
      const b = pending[0]!;
      const n = Math.min(rows - at, b.ids.length - offset);
      for (let i = 0; i < n; i++) {
        out.ids[at + i] = b.ids[offset + i]!;
        out.asOf[at + i] = b.asOf[offset + i]!;
      }
      out.features.set(b.features.subarray(offset * width, (offset + n) * width), at * width);
      out.found.set(b.found.subarray(offset, offset + n), at);
      at += n;
      offset += n;
      if (offset === b.ids.length) {
        pending.shift();
        offset = 0;
      }
    }
    pendingRows -= rows;
    return out;
  };
  for await (const batch of batches) {
    if (batch.ids.length === 0) continue;
    pending.push(batch);
    pendingRows += batch.ids.length;
    while (pendingRows >= size) yield take(size);
  }
  if (pendingRows > 0) yield take(pendingRows);
  pending = [];
}

/**
 * A chunk's identity: its size, first and last id and a hash of every id. A resumed run compares it
 * with a stored part to know whether the part scored exactly this chunk's customers.
 */
export function chunkFingerprint(ids: readonly string[]): string {
  // Ids hold no newline (the worker's schema bounds them to printable customer ids of the warehouse).
  const digest = createHash('sha1').update(ids.join('\n')).digest('hex').slice(0, 16);
  return `${ids.length}:${digest}:${ids[0] ?? ''}:${ids[ids.length - 1] ?? ''}`;
}

/** A chunk as JSON in the worker's payload. */
export const InlineChunkSchema = z.object({
  // One check over the array: a per-element schema costs a fifth of a worker's time on 1,000 ids.
  ids: z.custom<string[]>((v) => Array.isArray(v) && v.length >= 1 && v.length <= 10_000 && v.every((id) => typeof id === 'string' && id.length >= 1 && id.length <= 128), {
    message: 'ids must hold 1 to 10,000 customer ids of 1 to 128 characters',
  }),
  /** The features, row-major in FEATURES order, as base64 of little-endian float64 (NaN = missing). */
  features: z.string(),
  /** Positions of members the features table lacks. */
  missing: z.array(z.number().int().nonnegative()),
  /** The features' dates as runs: [date, how many customers in a row]. */
  as_of: z.array(z.tuple([z.string().nullable(), z.number().int().positive()])),
});
export type InlineChunk = z.infer<typeof InlineChunkSchema>;

export function toInline(chunk: FeatureChunk): InlineChunk {
  const missing: number[] = [];
  chunk.found.forEach((f, i) => {
    if (!f) missing.push(i);
  });
  const asOf: [string | null, number][] = [];
  for (const d of chunk.asOf) {
    const last = asOf[asOf.length - 1];
    if (last && last[0] === d) last[1]++;
    else asOf.push([d, 1]);
  }
  const bytes = Buffer.from(chunk.features.buffer, chunk.features.byteOffset, chunk.features.byteLength);
  return { ids: chunk.ids, features: bytes.toString('base64'), missing, as_of: asOf };
}

export function fromInline(inline: InlineChunk): FeatureChunk {
  const n = inline.ids.length;
  const raw = Buffer.from(inline.features, 'base64');
  if (raw.byteLength !== n * FEATURES.length * 8) throw new IntegrityError(`the chunk carries ${raw.byteLength} bytes of features for ${n} customers`);
  // Copied: a base64 decode's buffer is not aligned for a Float64Array view.
  const features = new Float64Array(n * FEATURES.length);
  new Uint8Array(features.buffer).set(raw);
  const found = new Uint8Array(n).fill(1);
  for (const i of inline.missing) if (i < n) found[i] = 0;
  const asOf = new Array<string | null>(n);
  let at = 0;
  for (const [d, count] of inline.as_of) for (let k = 0; k < count && at < n; k++) asOf[at++] = d;
  if (at !== n) throw new IntegrityError(`the chunk dates ${at} of its ${n} customers`);
  return { ids: inline.ids, features, found, asOf };
}

/** A chunk as an Arrow IPC stream (read whole, never seeked): customer_id, found, as_of and one float64 column per feature. */
export function encodeChunkFile(chunk: FeatureChunk): Uint8Array {
  const n = chunk.ids.length;
  const width = FEATURES.length;
  const columns: ArrowColumn[] = [
    { name: 'customer_id', type: 'utf8', values: chunk.ids },
    { name: 'found', type: 'uint8', values: chunk.found },
    { name: 'as_of', type: 'utf8', values: chunk.asOf },
  ];
  FEATURES.forEach((f, j) => {
    const col = new Float64Array(n);
    for (let i = 0; i < n; i++) col[i] = chunk.features[i * width + j]!;
    columns.push({ name: f, type: 'float64', values: col });
  });
  return writeArrowStream(columns, {});
}

export function decodeChunkFile(bytes: Uint8Array): FeatureChunk {
  let table: Table;
  try {
    table = tableFromIPC(bytes);
  } catch (error) {
    throw new IntegrityError(`the chunk file is not an Arrow IPC file: ${(error as Error).message}`, { cause: error });
  }
  const n = table.numRows;
  const width = FEATURES.length;
  const column = (name: string) => {
    const c = table.getChild(name);
    if (!c) throw new IntegrityError(`the chunk file has no column ${name}`);
    return c;
  };
  const features = new Float64Array(n * width);
  FEATURES.forEach((f, j) => {
    const values = column(f).toArray() as Float64Array;
    for (let i = 0; i < n; i++) features[i * width + j] = values[i]!;
  });
  return {
    ids: [...(column('customer_id').toArray() as string[])],
    features,
    found: Uint8Array.from(column('found').toArray() as Uint8Array),
    asOf: [...(column('as_of').toArray() as (string | null)[])],
  };
}

/** The found customers of a chunk: their ids, their features as one matrix, and their dates. */
export function foundRows(chunk: FeatureChunk): { ids: string[]; features: Float64Array; asOf: (string | null)[]; missing: string[] } {
  const width = FEATURES.length;
  let n = 0;
  for (const f of chunk.found) n += f;
  if (n === chunk.ids.length) return { ids: chunk.ids, features: chunk.features, asOf: chunk.asOf, missing: [] };
  const ids: string[] = [];
  const asOf: (string | null)[] = [];
  const missing: string[] = [];
  const features = new Float64Array(n * width);
  chunk.ids.forEach((id, i) => {
    if (!chunk.found[i]) {
      missing.push(id);
      return;
    }
    features.set(chunk.features.subarray(i * width, (i + 1) * width), ids.length * width);
    ids.push(id);
    asOf.push(chunk.asOf[i]!);
  });
  return { ids, features, asOf, missing };
}
