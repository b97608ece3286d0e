import { randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { logger, telemetry } from '../observability';
import type { CustomerResult, ResultSource } from '../scoring/results';
import type { ObjectStore } from '../storage/index';

/**
 * The prediction log: every answer the service gives (and every shadow answer of a challenger),
 * one JSON line per customer and model, in gzip-compressed JSON Lines files below `predictions/`,
 * partitioned by day (`predictions/dt=YYYY-MM-DD/…`, the layout Athena and Glue read as a
 * partition column). JSON Lines rather than Parquet: an invocation writes a few hundred lines at
 * most, where Parquet's footer and row-group overhead buy nothing, and writing it needs no
 * dependency in the prediction function; gzip brings a line to about 60 bytes.
 */
export const PREDICTIONS_PREFIX = 'predictions';

/** One logged answer for one customer and one model. */
export interface PredictionRecord {
  /** When the answer was given (ISO timestamp). */
  t: string;
  customer_id: string;
  model: 'churn' | 'nbo' | 'rfm';
  source: ResultSource['type'];
  version: number | null;
  alias: string | null;
  /** Scored by a challenger beside the served model; never returned to the caller. */
  shadow: boolean;
  /** The date the features were valid for (the warehouse's updated_at), when known. */
  as_of: string | null;
  /** The request (`req:<id>`) or segment run (`run:<segment>/<run>`) the answer belongs to. */
  origin: string;
  warnings?: string[];
  churn_probability?: number;
  churn_risk?: string;
  offer_id?: string;
  confidence?: number;
  /** Every offer's probability, by offer id. */
  offer_probabilities?: Record<string, number>;
  rfm_score?: string;
  rfm_segment?: string;
}

/** What a log needs to know about an answer beyond the result itself. */
export interface AnswerContext {
  t: string;
  origin: string;
  shadow?: boolean;
  warnings?: string[];
  asOf?: Map<string, string | null>;
}

/** Turns answers into log records (three for type `all`). */
export function recordsOf(results: readonly { customer_id: string; result: CustomerResult }[], context: AnswerContext): PredictionRecord[] {
  const out: PredictionRecord[] = [];
  for (const { customer_id, result } of results) {
    const base = (source: ResultSource) => ({
      t: context.t,
      customer_id,
      source: source.type,
      version: source.type === 'model' ? source.version : null,
      alias: source.type === 'model' ? source.alias : null,
      shadow: context.shadow ?? false,
      as_of: context.asOf?.get(customer_id) ?? null,
      origin: context.origin,
      ...(context.warnings?.length ? { warnings: context.warnings } : {}),
    });
    const parts = 'source' in result ? [result] : [result.churn, result.nbo, result.rfm];
    for (const part of parts) {
      if (!part) continue;
      if ('churn_probability' in part) {
        out.push({ ...base(part.source), model: 'churn', churn_probability: part.churn_probability, churn_risk: part.churn_risk });
      } else if ('offer_id' in part) {
        out.push({
          ...base(part.source),
          model: 'nbo',
          offer_id: part.offer_id,
          confidence: part.confidence,
          offer_probabilities: Object.fromEntries(part.offers.map((o) => [o.offer_id, o.probability])),
        });
      } else {
        out.push({ ...base(part.source), model: 'rfm', rfm_score: part.rfm_score, rfm_segment: part.segment });
      }
    }
  }
  return out;
}

/** The key of a log file: its day's partition, then a name unique to the invocation (or run chunk). */
export function logKey(day: string, name: string): string {
  return `${PREDICTIONS_PREFIX}/dt=${day}/${name}.jsonl.gz`;
}

export function encodeRecords(records: readonly PredictionRecord[]): Uint8Array {
  return gzipSync(records.map((r) => JSON.stringify(r)).join('\n') + '\n', { level: 6 });
}

export function decodeRecords(body: Uint8Array): PredictionRecord[] {
  const text = gunzipSync(body).toString('utf8');
  const out: PredictionRecord[] = [];
  for (const line of text.split('\n')) if (line) out.push(JSON.parse(line) as PredictionRecord);
  return out;
}

export interface PredictionLogSettings {
  enabled: boolean;
  /** Share of single-customer answers logged (batch, legacy batch and segment answers are all logged). */
  singleSampleRate: number;
  /** Attempts per file before the write is given up (and counted). */
  attempts: number;
  /** Pause before attempt n is n times this. */
  backoffMs: number;
}

/**
 * Writes the log. A write never throws: a failed write is tried again, then given up with a
 * `PredictionLogWriteFailures` metric (an alarm watches it) and an error log line. The answer it
 * belongs to is already built and is never affected.
 */
export class PredictionLog {
  constructor(
    private readonly store: ObjectStore,
    readonly settings: PredictionLogSettings,
    private readonly random: () => number = Math.random,
  ) {}

  /** Whether a single-customer answer is logged (sampled); batches and segment runs always are. */
  sampled(batch: boolean): boolean {
    if (!this.settings.enabled) return false;
    return batch || this.random() < this.settings.singleSampleRate;
  }

  /** Writes one invocation's records as one file; `name` defaults to a fresh unique name. Returns whether it was written. */
  async write(records: readonly PredictionRecord[], options: { name?: string; day?: string } = {}): Promise<boolean> {
    if (!this.settings.enabled || records.length === 0) return true;
    const day = options.day ?? records[0]!.t.slice(0, 10);
    const name = options.name ?? `${records[0]!.t.replace(/[-:.]/g, '')}-${randomBytes(6).toString('hex')}`;
    const key = logKey(day, name);
    let body: Uint8Array;
    try {
      body = encodeRecords(records);
    } catch (error) {
      return this.lost(key, records.length, error);
    }
    for (let attempt = 1; attempt <= this.settings.attempts; attempt++) {
      try {
        await this.store.put(key, body, { contentType: 'application/x-ndjson' });
        return true;
      } catch (error) {
        if (attempt === this.settings.attempts) return this.lost(key, records.length, error);
        await new Promise((r) => setTimeout(r, this.settings.backoffMs * attempt));
      }
    }
    return false;
  }

  private lost(key: string, records: number, error: unknown): false {
    telemetry.count('PredictionLogWriteFailures', 1);
    telemetry.count('PredictionLogRecordsLost', records);
    logger.error('prediction log write failed; the answers were returned, their log records are lost', { key, records, error: (error as Error).message });
    return false;
  }
}

/**
 * Reads the log of the days from `since` up to today for one model: the day partitions are listed
 * (one listing of `predictions/`), then each file of those days is read, `parallel` at a time.
 */
export async function readPredictionLog(
  store: ObjectStore,
  options: { model: string; since?: string; onProgress?: (done: number, total: number) => void; parallel?: number },
): Promise<PredictionRecord[]> {
  const { prefixes } = await store.list(`${PREDICTIONS_PREFIX}/`, { delimiter: '/' });
  const days = prefixes
    .map((p) => /dt=(\d{4}-\d{2}-\d{2})\/$/.exec(p)?.[1])
    .filter((d): d is string => d !== undefined && (options.since === undefined || d >= options.since))
    .sort();
  const keys: string[] = [];
  for (const day of days) keys.push(...(await store.list(`${PREDICTIONS_PREFIX}/dt=${day}/`)).keys.filter((k) => k.endsWith('.jsonl.gz')));
  const out: PredictionRecord[] = [];
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++]!;
      const object = await store.get(key);
      if (object) for (const r of decodeRecords(object.body)) if (r.model === options.model) out.push(r);
      options.onProgress?.(++done, keys.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.parallel ?? 16, Math.max(1, keys.length)) }, worker));
  return out;
}
