import { readFile } from 'node:fs/promises';
import { ValidationError } from '../errors';
import type { Warehouse } from '../warehouse/index';
import { churnSnapshots, readChurnHistory, readOfferLog } from '../warehouse/history';
import trainingDefaults from '../../models/training.json';
import { FEATURES, OFFER_IDS } from '../catalog';
import { parseCsv } from '../csv';
import { encodeCsv, inferEncodings, positiveLabel } from './csv';
import type { ColumnEncoding } from '../inference/encoding';
import type { InputColumn } from './design';
import type { Splits, TrainingSpec } from './pipeline';
import type { OfferRows } from './acceptance';
import { stratifiedParts } from './selection';

/** How much churn history to learn from. */
export interface ChurnSampling {
  /**
   * Share of customers whose earlier snapshots are learnt from (0 < share <= 1); by default the
   * share that keeps about `maxRows` learning rows (models/training.json), all of them below that.
   */
  share?: number;
  maxRows?: number;
  seed: number;
}

/**
 * Churn training data from `customer_churn_history`: learn from the earlier snapshots (folded by
 * time for model selection), report on the latest. A long history is sampled by customer in SQL
 * (seeded), keeping every snapshot of a sampled customer; the latest snapshot is read whole.
 */
export async function churnTrainingSpec(warehouse: Warehouse, onProgress?: (message: string) => void, sampling: ChurnSampling = { seed: 42 }): Promise<TrainingSpec> {
  const snapshots = await churnSnapshots(warehouse);
  if (snapshots.length === 0) throw new ValidationError('customer_churn_history is empty: load history first (e.g. loyalty-ml demo-data)');
  const learning = snapshots.slice(0, -1).reduce((n, s) => n + s.rows, 0);
  const maxRows = sampling.maxRows ?? trainingDefaults.max_learning_rows;
  const share = sampling.share ?? (learning > maxRows ? Math.ceil((maxRows / learning) * 1000) / 1000 : 1);
  if (!(share > 0 && share <= 1)) throw new ValidationError(`The sample share must be above 0 and at most 1, got ${share}`);
  const sample = share < 1 ? { share, seed: sampling.seed } : null;
  if (sample) onProgress?.(`sampling ${(share * 100).toFixed(1)}% of customers (md5 of customer id and seed ${sampling.seed}) from ${learning.toLocaleString('en-US')} learning rows`);
  const history = await readChurnHistory(warehouse, { sample, onProgress: (done, total, rows) => onProgress?.(`reading churn history: snapshot ${done}/${total}, ${rows} rows`) });
  const dates = [...new Set(history.times)].sort();
  if (dates.length < 3) throw new ValidationError(`customer_churn_history has ${dates.length} snapshot dates; a time-based split needs at least 3`);
  const test = dates[dates.length - 1]!;
  const sampled = sample ? `; learning rows: a ${(share * 100).toFixed(1)}% sample of customers (md5 of customer id, seed ${sampling.seed})` : '';
  return {
    name: 'churn',
    classes: ['0', '1'],
    columns: FEATURES.map((name) => ({ name, kind: 'numeric' as const })),
    encodings: null,
    X: history.X,
    y: Int32Array.from(history.labels as number[]),
    rows: history.rows,
    splits: splitBy(history.times, (t) => (t === test ? 'test' : 'train'), `time-based: learn from snapshots ${dates[0]} to ${dates[dates.length - 2]}, report on ${test}${sampled}`),
    times: history.times,
    lineage: { data_source: `warehouse:${warehouse.cfg.churn_history.table}`, time_window: { from: dates[0]!, to: test }, notes: sample ? `sampled ${(share * 100).toFixed(1)}% of customers for learning (seed ${sampling.seed})` : null },
  };
}

/** Next-best-offer training data: every offer made, its outcome, and what is known of why it was chosen. */
export interface NboTrainingSpec {
  name: string;
  data: OfferRows;
  customerIds: string[];
  offeredAt: string[];
  /** Logged P(offer sent | customer), checked to lie in (0, 1] on every row; null when the history has none. */
  propensity: Float64Array | null;
  /** Why there are no logged propensities. */
  propensityNote: string | null;
  /** train: the months before the evaluation window; test: the window (the last two calendar months). */
  splits: Splits;
  /** The window's first and last offer dates (ISO days). */
  window: { from: string; to: string };
  lineage: TrainingSpec['lineage'];
}

/**
 * Next-best-offer training data from `customer_offer_history`: every offer made, accepted or
 * refused, with the logged propensity where the warehouse has one. Learn from the earlier months
 * (folded by month for model selection); report on, and estimate policies over, the last two
 * calendar months.
 */
export async function nboTrainingSpec(warehouse: Warehouse, onProgress?: (message: string) => void): Promise<NboTrainingSpec> {
  const log = await readOfferLog(warehouse, { onProgress: (done, total, rows) => onProgress?.(`reading offer history: month ${done}/${total}, ${rows} offers`) });
  if (log.rows === 0) throw new ValidationError('customer_offer_history is empty: load history first (e.g. loyalty-ml demo-data)');
  const unknown = [...new Set(log.offerIds)].filter((id) => !OFFER_IDS.includes(id));
  if (unknown.length) throw new ValidationError(`customer_offer_history names offers missing from models/offers.json: ${unknown.slice(0, 5).join(', ')}`);
  if (log.propensity) checkPropensities(log.propensity, (i) => `customer ${log.customerIds[i]}, offered ${log.offeredAt[i]}, offer ${log.offerIds[i]}`);
  const months = log.offeredAt.map((t) => t.slice(0, 7));
  const distinct = [...new Set(months)].sort();
  if (distinct.length < 5) throw new ValidationError(`customer_offer_history spans ${distinct.length} months; a time-based split needs at least 5`);
  const testFrom = distinct[distinct.length - 2]!;
  const splits = splitBy(months, (m) => (m >= testFrom ? 'test' : 'train'), `time-based: learn from offers from ${distinct[0]} to before ${testFrom}, report on ${testFrom} and later`);
  const days = log.offeredAt.map((t) => t.slice(0, 10));
  const windowDays = Array.from(splits.test, (r) => days[r]!).sort();
  return {
    name: 'nbo',
    data: {
      offers: [...OFFER_IDS],
      columns: FEATURES.map((name) => ({ name, kind: 'numeric' as const })),
      X: log.X,
      rows: log.rows,
      action: Int32Array.from(log.offerIds, (id) => OFFER_IDS.indexOf(id)),
      accepted: Int32Array.from(log.accepted),
      months,
    },
    customerIds: log.customerIds,
    offeredAt: log.offeredAt,
    propensity: log.propensity,
    propensityNote: log.propensityNote,
    splits,
    window: { from: windowDays[0]!, to: windowDays[windowDays.length - 1]! },
    lineage: {
      data_source: `warehouse:${warehouse.cfg.offer_history.table} (every offer made, accepted or refused)`,
      time_window: { from: days.reduce((a, b) => (a < b ? a : b)), to: days.reduce((a, b) => (a > b ? a : b)) },
      notes: log.propensity ? `logged propensities from ${warehouse.cfg.offer_history.table}.${warehouse.cfg.offer_history.propensity}` : `logging policy estimated from the history: ${log.propensityNote}`,
    },
  };
}

/** Every logged propensity must be a number in (0, 1]: an error names the first row that is not. */
export function checkPropensities(p: Float64Array, row: (i: number) => string): void {
  for (let i = 0; i < p.length; i++) {
    const v = p[i]!;
    if (Number.isNaN(v)) throw new ValidationError(`customer_offer_history has no propensity on the row of ${row(i)}: every row needs one when the column is mapped (or map offer_history.propensity to null to estimate the logging policy)`, { code: 'invalid_propensity' });
    if (!(v > 0 && v <= 1)) throw new ValidationError(`customer_offer_history's propensity ${v} on the row of ${row(i)} is outside (0, 1]: it must be the chance the offer sent had of being chosen`, { code: 'invalid_propensity' });
  }
}

export interface CsvTrainingOptions {
  name: string;
  file: string;
  label: string;
  positive?: string;
  features?: string[];
  idColumn?: string;
  testFile?: string;
  seed: number;
}

/**
 * Binary training data from a CSV file. Feature encodings are inferred from the training rows.
 * Without a test file, 20% of rows (stratified, seeded) are held out to report on; all other rows
 * are learnt from (model selection folds them).
 */
export async function csvTrainingSpec(options: CsvTrainingOptions): Promise<{ spec: TrainingSpec; skipped: { column: string; reason: string }[]; dropped: number }> {
  const table = parseCsv(await readText(options.file), options.file);
  const { positive, negative } = positiveLabel(table, options.label, options.positive);
  const idColumn = options.idColumn ?? guessIdColumn(table.columns);
  if (options.idColumn && !table.columns.includes(options.idColumn)) throw new ValidationError(`--id-column "${options.idColumn}" is not in the CSV`);
  const { encodings, skipped } = inferEncodings(table, { label: options.label, idColumn, features: options.features });
  const trainPart = encodeCsv(table, encodings, options.label, positive);
  let X = trainPart.X;
  let y = trainPart.y;
  let rows = trainPart.rows;
  let records: Record<string, unknown>[] = trainPart.keep.map((i) => table.records[i]!);
  let splits: Splits;
  if (options.testFile) {
    const testTable = parseCsv(await readText(options.testFile), options.testFile);
    const testPart = encodeCsv(testTable, encodings, options.label, positive);
    X = concat(trainPart.X, testPart.X);
    records = [...records, ...testPart.keep.map((i) => testTable.records[i]!)];
    y = Int32Array.from([...trainPart.y, ...testPart.y]);
    rows = trainPart.rows + testPart.rows;
    splits = {
      train: Uint32Array.from({ length: trainPart.rows }, (_, i) => i),
      test: Uint32Array.from({ length: testPart.rows }, (_, i) => trainPart.rows + i),
      description: `learn from every row of ${basename(options.file)}, report on ${basename(options.testFile)}`,
    };
  } else {
    const parts = stratifiedSplit(y, [0.8, 0.2], options.seed);
    splits = { train: parts[0]!, test: parts[1]!, description: `stratified random: learn from 80%, report on 20% (seed ${options.seed})` };
  }
  return {
    spec: {
      name: options.name,
      classes: [negative, positive],
      columns: inputColumns(encodings),
      encodings,
      X,
      y,
      rows,
      records,
      splits,
      lineage: { data_source: `csv:${basename(options.file)}${options.testFile ? ` + ${basename(options.testFile)}` : ''}`, time_window: null, notes: `label ${options.label} = ${positive}` },
    },
    skipped,
    dropped: trainPart.dropped,
  };
}

function splitBy(times: string[], part: (t: string) => 'train' | 'test', description: string): Splits {
  const out = { train: [] as number[], test: [] as number[] };
  times.forEach((t, i) => out[part(t)].push(i));
  return { train: Uint32Array.from(out.train), test: Uint32Array.from(out.test), description };
}

/** The model's input columns from the CSV encodings (one input feature per encoded column). */
export function inputColumns(encodings: ColumnEncoding[]): InputColumn[] {
  return encodings.map((e): InputColumn => {
    if (e.kind === 'ordinal') return { name: e.column, kind: 'categorical', categories: e.categories, ordered: e.ordered ?? false };
    if (e.kind === 'one_hot') throw new TypeError('CSV training encodes categories as their index, not one-hot');
    return { name: e.column, kind: e.kind };
  });
}

/** Splits row indices into parts of the given fractions, keeping each class's share in every part. */
export function stratifiedSplit(y: Int32Array, fractions: number[], seed: number): Uint32Array[] {
  return stratifiedParts(y, Uint32Array.from(y.keys()), fractions, seed);
}

function guessIdColumn(columns: string[]): string | undefined {
  return columns.find((c) => /^(id|customer_?id|customerid|client_?id|user_?id)$/i.test(c));
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new ValidationError(`Cannot read ${file}${code === 'ENOENT' ? ': no such file' : code ? ` (${code})` : ''}`);
  }
}

function concat(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function basename(path: string): string {
  return path.split('/').pop() ?? path;
}
