import { z } from 'zod';
import { DEFAULTED_RECENCY, OFFER_NAMES } from '../catalog';
import { addToHistograms, countsPsi, driftLevel, FeatureProfileSchema, FineHistogramSchema, histogramPsi, mergeHistograms, type FeatureProfile } from '../drift';
import { ContributionSumsSchema, ContributionSummarySchema, mergeSums, summarizeSums } from '../explain/summary';
import { RISK_BANDS } from '../scoring/results';
import { WARNING_CODES, WarningSchema, type Warning } from '../scoring/warnings';

/**
 * Segment statistics as mergeable partial aggregates. Every figure is kept as integer counts
 * (probabilities as micro-units: the API rounds them to 1e-6 anyway), so merging parts in any
 * order gives exactly what one pass over all customers gives: the same counts, the same median
 * and 90th percentile, the same histogram. Pure functions over plain JSON values.
 */

const count = z.number().int().nonnegative();
const counts = z.record(z.string(), count);
/** Churn probabilities in micro-units run from 0 to 1,000,000. */
const MICRO_VALUES = 1_000_001;

/**
 * Churn probabilities in micro-units with their counts, as one flat list of pairs
 * [value, count, value, count, …] in ascending order of value (about one pair per customer of a
 * chunk: compact in JSON, merged without a string per value). Checked in one loop: a schema per
 * entry costs more than the merge itself. The earlier form, an object keyed by value, is still
 * read (parts written before a deploy).
 */
const churnCounts = z.union([
  z.custom<number[]>(
    (v) => {
      if (!Array.isArray(v) || v.length % 2 !== 0) return false;
      let last = -1;
      for (let k = 0; k < v.length; k += 2) {
        const m = v[k];
        const c = v[k + 1];
        if (!Number.isInteger(m) || m <= last || m >= MICRO_VALUES || !Number.isInteger(c) || c < 1) return false;
        last = m;
      }
      return true;
    },
    { message: 'expected [value, count, …] pairs with values ascending in micro-units and whole counts' },
  ),
  z
    .record(
      z.string().refine((k) => /^\d{1,7}$/.test(k) && Number(k) < MICRO_VALUES, 'expected a probability in micro-units'),
      z.number().int().nonnegative(),
    )
    .transform((table) =>
      Object.entries(table)
        .filter(([, c]) => c > 0)
        .map(([m, c]) => [Number(m), c] as const)
        .sort((x, y) => x[0] - y[0])
        .flat(),
    ),
]);

/** One scored customer as a segment run stores it. */
export const CompactResultSchema = z.object({
  id: z.string(),
  churn: z.number().optional(),
  risk: z.enum(['low', 'medium', 'high']).optional(),
  offer: z.string().optional(),
  confidence: z.number().optional(),
  /** Every offer's probability (acceptance models: P(accept if sent)), by offer id. */
  offer_probabilities: z.record(z.string(), z.number()).optional(),
  rfm: z.string().optional(),
  rfm_segment: z.string().optional(),
});
export type CompactResult = z.infer<typeof CompactResultSchema>;

/** Customers one served model (or the mock baseline) answered for, keyed by what served them. */
export const ModelTallySchema = z.object({
  model: z.string(),
  source: z.enum(['model', 'mock']),
  version: z.number().int().positive().nullable(),
  alias: z.string().nullable(),
  customers: count,
});
export type ModelTally = z.infer<typeof ModelTallySchema>;

export const FeatureAggregateSchema = z.object({
  names: z.array(z.string()),
  n: count,
  missing: z.array(count),
  /** Per feature: the value every customer so far had, or "varies"; null before the first customer. */
  constant: z.array(z.union([z.object({ value: z.number().nullable() }), z.literal('varies')])).nullable(),
  defaultedRecency: count,
  /** Per feature, the values by fine bin (input drift); parts of earlier releases lack it. */
  bins: z.array(FineHistogramSchema).default([]),
});
export type FeatureAggregate = z.infer<typeof FeatureAggregateSchema>;

export const SegmentAggregateSchema = z.object({
  scored: count,
  failed: count,
  churn: z.object({
    n: count,
    sumMicro: count,
    micro: churnCounts,
    risk: counts,
    /** Reasons of a random sample of the customers, summed (null: none explained); parts of earlier releases lack it. */
    contributions: ContributionSumsSchema.nullable().default(null),
  }),
  nbo: z.object({
    n: count,
    confidenceSumMicro: count,
    topOffer: counts,
    nearCertain: count,
    /** Per offer, the sum of its probability over the customers with every offer's probability (micro-units); parts of earlier releases lack it. */
    offerSumMicro: counts.default({}),
    offerN: count.default(0),
  }),
  rfm: z.object({ n: count, segments: counts }),
  models: z.array(ModelTallySchema),
  features: FeatureAggregateSchema,
  /** Warnings about how the chunk was served (mock answers, stale models), by code. */
  workerWarnings: z.partialRecord(z.enum(WARNING_CODES), z.string()),
});
export type SegmentAggregate = z.output<typeof SegmentAggregateSchema>;

export function emptyAggregate(featureNames: readonly string[]): SegmentAggregate {
  return {
    scored: 0,
    failed: 0,
    churn: { n: 0, sumMicro: 0, micro: [], risk: { low: 0, medium: 0, high: 0 }, contributions: null },
    nbo: { n: 0, confidenceSumMicro: 0, topOffer: {}, nearCertain: 0, offerSumMicro: {}, offerN: 0 },
    rfm: { n: 0, segments: {} },
    models: [],
    features: { names: [...featureNames], n: 0, missing: featureNames.map(() => 0), constant: null, defaultedRecency: 0, bins: featureNames.map(() => ({})) },
    workerWarnings: {},
  };
}

const micro = (p: number) => Math.round(p * 1e6);
const inc = (counts: Record<string, number>, key: string, by = 1) => {
  counts[key] = (counts[key] ?? 0) + by;
};

/** Adds one scored customer (and the features it was scored on). */
export function addCustomer(agg: SegmentAggregate, result: CompactResult, features: (number | null)[] | undefined): void {
  agg.scored++;
  if (result.churn !== undefined) {
    const m = micro(result.churn);
    agg.churn.n++;
    agg.churn.sumMicro += m;
    addCount(agg.churn.micro, m, 1);
    inc(agg.churn.risk, result.risk!);
  }
  if (result.offer !== undefined) {
    const m = micro(result.confidence!);
    agg.nbo.n++;
    agg.nbo.confidenceSumMicro += m;
    inc(agg.nbo.topOffer, result.offer);
    if (m >= 990_000) agg.nbo.nearCertain++;
    if (result.offer_probabilities) {
      agg.nbo.offerN++;
      for (const [offer, p] of Object.entries(result.offer_probabilities)) inc(agg.nbo.offerSumMicro, offer, micro(p));
    }
  }
  if (result.rfm_segment !== undefined) {
    agg.rfm.n++;
    inc(agg.rfm.segments, result.rfm_segment);
  }
  if (features) addFeatures(agg.features, features);
}

/** Columns of scores for one chunk, as `addScores` reads them (see ScoringService.scoreMatrix). */
export interface ScoreColumns {
  n: number;
  churn?: { p: ArrayLike<number>; risk: ArrayLike<number> };
  /** `P`: every offer's probability, rows x classes. */
  nbo?: { classes: readonly string[]; top: ArrayLike<number>; confidence: ArrayLike<number>; P?: ArrayLike<number> };
  /** Cell indices into `cells` (see RFM_CELLS). */
  rfm?: { cell: ArrayLike<number>; cells: readonly { segment: string }[] };
}

/**
 * Adds a whole chunk of scored customers from columns, and the features they were scored on (a
 * row-major matrix, NaN = missing): the same counts `addCustomer` keeps one customer at a time.
 */
export function addScores(agg: SegmentAggregate, scores: ScoreColumns, X: Float64Array): void {
  const n = scores.n;
  agg.scored += n;
  if (scores.churn) {
    const { p, risk } = scores.churn;
    const values = new Float64Array(n);
    const bands = [0, 0, 0];
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const m = micro(p[i]!);
      sum += m;
      values[i] = m;
      bands[risk[i]!]!++;
    }
    agg.churn.n += n;
    agg.churn.sumMicro += sum;
    values.sort();
    const pairs: number[] = [];
    for (let i = 0; i < n; ) {
      let j = i + 1;
      while (j < n && values[j] === values[i]) j++;
      pairs.push(values[i]!, j - i);
      i = j;
    }
    agg.churn.micro = mergeCounts(agg.churn.micro, pairs);
    RISK_BANDS.forEach((r, k) => {
      if (bands[k]) inc(agg.churn.risk, r, bands[k]);
    });
  }
  if (scores.nbo) {
    const { classes, top, confidence } = scores.nbo;
    const tops = new Array<number>(classes.length).fill(0);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const m = micro(confidence[i]!);
      sum += m;
      if (m >= 990_000) agg.nbo.nearCertain++;
      tops[top[i]!]!++;
    }
    agg.nbo.n += n;
    agg.nbo.confidenceSumMicro += sum;
    classes.forEach((c, k) => {
      if (tops[k]) inc(agg.nbo.topOffer, c, tops[k]);
    });
    const P = scores.nbo.P;
    if (P) {
      const K = classes.length;
      const sums = new Array<number>(K).fill(0);
      for (let i = 0; i < n; i++) for (let k = 0; k < K; k++) sums[k]! += micro(P[i * K + k]!);
      agg.nbo.offerN += n;
      classes.forEach((c, k) => inc(agg.nbo.offerSumMicro, c, sums[k]));
    }
  }
  if (scores.rfm) {
    const cells = new Array<number>(scores.rfm.cells.length).fill(0);
    for (let i = 0; i < n; i++) cells[scores.rfm.cell[i]!]!++;
    agg.rfm.n += n;
    cells.forEach((c, k) => {
      if (c) inc(agg.rfm.segments, scores.rfm!.cells[k]!.segment, c);
    });
  }
  const f = agg.features;
  const width = f.names.length;
  const recency = f.names.indexOf('days_since_last_transaction');
  // The first row's values, compared as nullable() would (NaN equals NaN), without boxing a double per value.
  const first = n ? X.slice(0, width) : new Float64Array(width).fill(NaN);
  const varies = new Uint8Array(width);
  for (let i = 0; i < n; i++) {
    const base = i * width;
    for (let j = 0; j < width; j++) {
      const v = X[base + j]!;
      if (v !== v) f.missing[j]!++;
      if (!varies[j]) {
        const w = first[j]!;
        if (!(v === w || (v !== v && w !== w))) varies[j] = 1;
      }
    }
    if (recency >= 0 && X[base + recency] === DEFAULTED_RECENCY) f.defaultedRecency++;
  }
  if (n > 0) f.constant = mergeConstant(f.constant, Array.from(first, (value, j) => (varies[j] ? 'varies' : { value: nullable(value) })));
  while (f.bins.length < width) f.bins.push({});
  addToHistograms(f.bins, X, n, width);
  f.n += n;
}

/** Per feature: constant only if constant on both sides with the same value (null: no customer yet). */
function mergeConstant(a: FeatureAggregate['constant'], b: FeatureAggregate['constant']): FeatureAggregate['constant'] {
  if (a === null) return b;
  if (b === null) return a;
  return a.map((c, j) => {
    const d = b[j]!;
    return c !== 'varies' && d !== 'varies' && c.value === d.value ? c : 'varies';
  });
}

function nullable(v: number): number | null {
  return Number.isNaN(v) ? null : v;
}

function addFeatures(f: FeatureAggregate, row: (number | null)[]): void {
  f.n++;
  const recency = f.names.indexOf('days_since_last_transaction');
  row.forEach((v, j) => {
    if (v === null) f.missing[j]!++;
  });
  if (recency >= 0 && row[recency] === DEFAULTED_RECENCY) f.defaultedRecency++;
  addToHistograms(f.bins, Float64Array.from(row, (v) => v ?? NaN), 1, row.length);
  if (f.constant === null) f.constant = row.map((value) => ({ value }));
  else f.constant = f.constant.map((c, j) => (c !== 'varies' && c.value === row[j] ? c : 'varies'));
}

/**
 * Adds b into `target` in place. Exact: counts add; a feature stays constant only if equal on both
 * sides. The churn counts merge as two sorted lists, a copy as long as both: fine for a few parts, but
 * a run merges its many parts with AggregateMerger, whose dense counts keep it linear. Returns target.
 */
export function mergeInto(target: SegmentAggregate, b: SegmentAggregate): SegmentAggregate {
  const add = (x: Record<string, number>, y: Record<string, number>) => {
    for (const k in y) x[k] = (x[k] ?? 0) + y[k]!;
  };
  target.scored += b.scored;
  target.failed += b.failed;
  target.churn.n += b.churn.n;
  target.churn.sumMicro += b.churn.sumMicro;
  target.churn.micro = mergeCounts(target.churn.micro, b.churn.micro);
  add(target.churn.risk, b.churn.risk);
  target.churn.contributions = mergeSums(target.churn.contributions, b.churn.contributions);
  target.nbo.n += b.nbo.n;
  target.nbo.confidenceSumMicro += b.nbo.confidenceSumMicro;
  add(target.nbo.topOffer, b.nbo.topOffer);
  target.nbo.nearCertain += b.nbo.nearCertain;
  add(target.nbo.offerSumMicro, b.nbo.offerSumMicro);
  target.nbo.offerN += b.nbo.offerN;
  target.rfm.n += b.rfm.n;
  add(target.rfm.segments, b.rfm.segments);
  for (const t of b.models) tallyModel(target.models, t, t.customers);
  const f = target.features;
  const g = b.features;
  f.constant = mergeConstant(f.constant, g.constant);
  f.n += g.n;
  f.missing = f.missing.map((m, j) => m + g.missing[j]!);
  f.defaultedRecency += g.defaultedRecency;
  mergeHistograms(f.bins, g.bins);
  Object.assign(target.workerWarnings, b.workerWarnings);
  return target;
}

/** Two ascending [value, count, …] lists as one (counts of equal values added). */
function mergeCounts(a: number[], b: number[]): number[] {
  if (a.length === 0) return b.slice();
  if (b.length === 0) return a;
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! < b[j]!)) {
      out.push(a[i]!, a[i + 1]!);
      i += 2;
    } else if (i >= a.length || b[j]! < a[i]!) {
      out.push(b[j]!, b[j + 1]!);
      j += 2;
    } else {
      out.push(a[i]!, a[i + 1]! + b[j + 1]!);
      i += 2;
      j += 2;
    }
  }
  return out;
}

/** Adds `count` customers at micro-value m to an ascending [value, count, …] list. */
function addCount(pairs: number[], m: number, count: number): void {
  let lo = 0;
  let hi = pairs.length / 2;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pairs[2 * mid]! < m) lo = mid + 1;
    else hi = mid;
  }
  if (pairs[2 * lo] === m) pairs[2 * lo + 1]! += count;
  else pairs.splice(2 * lo, 0, m, count);
}

/**
 * Merges a run's parts as they arrive. A large segment's churn counts hold up to a million distinct
 * values (one per micro-unit): they are added into one dense array (8 MB), where merging sorted
 * lists part after part would grow quadratic; the statistics read it back in order.
 */
export class AggregateMerger {
  readonly total: SegmentAggregate;
  private readonly churn = new Float64Array(MICRO_VALUES);

  constructor(featureNames: readonly string[]) {
    this.total = emptyAggregate(featureNames);
  }

  add(part: SegmentAggregate): void {
    const pairs = part.churn.micro;
    for (let k = 0; k < pairs.length; k += 2) this.churn[pairs[k]!]! += pairs[k + 1]!;
    mergeInto(this.total, { ...part, churn: { ...part.churn, micro: [] } });
  }

  statistics(references: DriftReference[] = []): SegmentStatistics {
    const pairs: number[] = [];
    for (let m = 0; m < MICRO_VALUES; m++) if (this.churn[m]) pairs.push(m, this.churn[m]!);
    return finalizeStatistics({ ...this.total, churn: { ...this.total.churn, micro: pairs } }, references);
  }
}

/** Counts customers for the model (or mock) that served them, merging with an existing tally. */
export function tallyModel(tallies: ModelTally[], served: Omit<ModelTally, 'customers'>, customers = 1): void {
  const same = tallies.find((t) => t.model === served.model && t.source === served.source && t.version === served.version && t.alias === served.alias);
  if (same) same.customers += customers;
  else tallies.push({ model: served.model, source: served.source, version: served.version, alias: served.alias, customers });
}

/** How a tally reads in a table: "churn v3 (production)" or "churn (mock)". */
export function modelLabel(t: Omit<ModelTally, 'customers'>): string {
  return t.source === 'model' ? `${t.model} v${t.version} (${t.alias})` : `${t.model} (mock)`;
}

/**
 * What a run's distributions are compared with, for one model version: an earlier run of the
 * segment under that version (its scores and inputs), or the base the version was trained for
 * (inputs only).
 */
export interface DriftReference {
  model: string;
  version: number;
  /** Which reference: the segment's first run under the version, its previous run, or the segment at training. */
  against: 'baseline' | 'previous' | 'training';
  /** In words: "baseline run r-… (the first under churn v3)", "previous run r-…", "churn v3 at training: …". */
  reference: string;
  /** An earlier run's scores: churn's histogram counts over 10 bins of [0, 1], NBO's top-offer counts. */
  scores?: { churn?: number[]; topOffers?: Record<string, number> };
  inputs?: FeatureProfile | null;
}

export const SegmentStatisticsSchema = z.object({
  customers: z.object({ scored: count, failed: count }),
  churn: z
    .object({
      customers: count,
      mean: z.number(),
      median: z.number(),
      p90: z.number(),
      std: z.number(),
      risk_bands: counts,
      histogram: z.object({ edges: z.array(z.number()), counts: z.array(count) }),
      contributions: ContributionSummarySchema.nullable()
        .optional()
        .describe("what drives this segment's churn risk: the mean reasons of a random sample of its customers (about 100), with 95% intervals; null when the version has no background"),
    })
    .nullable(),
  nbo: z
    .object({
      customers: count,
      mean_confidence: z.number().describe("mean of each customer's top offer probability: for acceptance models, the acceptance rate expected if every customer got their best offer"),
      top_offers: z.array(z.object({ offer_id: z.string(), offer_name: z.string(), customers: count, share: z.number() })).describe('how many customers each offer is the best for'),
      expected_acceptance_best_offer: z.number().nullable().optional().describe('acceptance models: the acceptance rate expected if every customer of the segment got their best offer (the mean of their top probabilities)'),
      offers: z
        .array(
          z.object({
            offer_id: z.string(),
            offer_name: z.string(),
            mean_probability: z.number().describe('mean over the segment of P(accept if this offer is sent)'),
            best_for: count.describe('customers for whom it is the best offer'),
            best_share: z.number(),
          }),
        )
        .optional()
        .describe('which offers work best for the segment: every offer, highest mean acceptance probability first (runs of earlier releases lack it)'),
    })
    .nullable(),
  rfm: z.object({ customers: count, segments: z.array(z.object({ segment: z.string(), customers: count, share: z.number() })) }).nullable(),
  models: z.array(ModelTallySchema.extend({ label: z.string() })),
  warnings: z.array(WarningSchema),
  drift: z
    .array(
      z.object({
        kind: z.enum(['score', 'feature']).default('score').describe('score: the model\'s answers moved; feature: one of its inputs moved'),
        model: z.string(),
        feature: z.string().optional(),
        reference_version: z.number().int(),
        psi: z.number(),
        level: z.enum(['stable', 'moderate', 'major']),
        against: z.enum(['baseline', 'previous', 'training']).optional().describe('which reference (entries of earlier releases, against the training holdout, have none)'),
        reference: z.string().describe('what the run is compared with: the segment\'s first run under this version, its previous run, or the base the version was trained for'),
      }),
    )
    .describe('population stability index of the scores against the segment\'s own earlier runs under the same version, and of every input against those runs and against the base the version was trained for'),
  /** The inputs the run scored, per feature by fine bin (kept with the run, not in the history): later runs compare with them. */
  inputs: FeatureProfileSchema.optional(),
});
export type SegmentStatistics = z.infer<typeof SegmentStatisticsSchema>;

const EDGES = Array.from({ length: 11 }, (_, i) => i / 10);

/** Final statistics from a merged aggregate. */
export function finalizeStatistics(agg: SegmentAggregate, references: DriftReference[] = []): SegmentStatistics {
  const warnings: Warning[] = WARNING_CODES.flatMap((code) => (agg.workerWarnings[code] === undefined ? [] : [{ code, message: agg.workerWarnings[code] }]));
  let churn: SegmentStatistics['churn'] = null;
  let churnCounts: number[] | null = null;
  if (agg.churn.n > 0) {
    const pairs = agg.churn.micro;
    const n = agg.churn.n;
    const at = (rank: number): number => {
      // The rank-th smallest value (1-based), walking the sorted counts.
      let seen = 0;
      for (let k = 0; k < pairs.length; k += 2) {
        seen += pairs[k + 1]!;
        if (seen >= rank) return pairs[k]!;
      }
      return pairs[pairs.length - 2]!;
    };
    const medianMicro = n % 2 ? at((n + 1) / 2) : (at(n / 2) + at(n / 2 + 1)) / 2;
    const p90Micro = at(Math.ceil(0.9 * n));
    const meanMicro = agg.churn.sumMicro / n;
    let squares = 0;
    churnCounts = new Array<number>(10).fill(0);
    for (let k = 0; k < pairs.length; k += 2) {
      const m = pairs[k]!;
      const c = pairs[k + 1]!;
      squares += c * (m - meanMicro) ** 2;
      churnCounts[Math.min(9, Math.floor(m / 100_000))]! += c;
    }
    const std = Math.sqrt(squares / n) / 1e6;
    churn = {
      customers: n,
      mean: meanMicro / 1e6,
      median: medianMicro / 1e6,
      p90: p90Micro / 1e6,
      std,
      risk_bands: { low: agg.churn.risk.low ?? 0, medium: agg.churn.risk.medium ?? 0, high: agg.churn.risk.high ?? 0 },
      histogram: { edges: EDGES, counts: churnCounts },
      contributions: agg.churn.contributions ? summarizeSums(agg.churn.contributions) : null,
    };
    if (n >= 10 && std < 0.005) {
      warnings.push({ code: 'collapsed_predictions', model: 'churn', message: `churn probabilities are nearly equal for all ${n} customers (${churn.mean.toFixed(3)} ± ${std.toFixed(4)})` });
    }
  }
  let nbo: SegmentStatistics['nbo'] = null;
  if (agg.nbo.n > 0) {
    const n = agg.nbo.n;
    const m = agg.nbo.offerN;
    nbo = {
      customers: n,
      mean_confidence: agg.nbo.confidenceSumMicro / n / 1e6,
      top_offers: Object.entries(agg.nbo.topOffer)
        .sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]))
        .map(([offer, c]) => ({ offer_id: offer, offer_name: OFFER_NAMES.get(offer) ?? offer, customers: c, share: c / n })),
      expected_acceptance_best_offer: m === n ? agg.nbo.confidenceSumMicro / n / 1e6 : null,
      ...(m > 0
        ? {
            offers: Object.entries(agg.nbo.offerSumMicro)
              .map(([offer, sum]) => ({ offer_id: offer, offer_name: OFFER_NAMES.get(offer) ?? offer, mean_probability: sum / m / 1e6, best_for: agg.nbo.topOffer[offer] ?? 0, best_share: (agg.nbo.topOffer[offer] ?? 0) / n }))
              .sort((x, y) => y.mean_probability - x.mean_probability || x.offer_id.localeCompare(y.offer_id)),
          }
        : {}),
    };
    const top = nbo.top_offers[0]!;
    if (n >= 10 && top.customers === n && agg.nbo.nearCertain === n) {
      warnings.push({ code: 'collapsed_predictions', model: 'nbo', message: `every one of the ${n} customers gets offer ${top.offer_id} at 99%+ confidence` });
    }
  }
  const rfm: SegmentStatistics['rfm'] =
    agg.rfm.n > 0
      ? {
          customers: agg.rfm.n,
          segments: Object.entries(agg.rfm.segments)
            .sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]))
            .map(([segment, c]) => ({ segment, customers: c, share: c / agg.rfm.n })),
        }
      : null;
  warnings.push(...featureWarnings(agg.features));

  const inputs: FeatureProfile | undefined = agg.features.n > 0 ? { source: 'the run\'s customers', customers: agg.features.n, features: [...agg.features.names], histograms: agg.features.bins } : undefined;
  const drift: SegmentStatistics['drift'] = [];
  for (const ref of references) {
    const entry = (kind: 'score' | 'feature', value: number, feature?: string) =>
      drift.push({ kind, model: ref.model, ...(feature ? { feature } : {}), reference_version: ref.version, psi: value, level: driftLevel(value), against: ref.against, reference: ref.reference });
    if (ref.model === 'churn' && churnCounts && ref.scores?.churn) entry('score', countsPsi(churnCounts, ref.scores.churn));
    if (ref.model === 'nbo' && nbo && ref.scores?.topOffers) {
      const offers = [...new Set([...Object.keys(ref.scores.topOffers), ...Object.keys(agg.nbo.topOffer)])].sort();
      entry('score', countsPsi(offers.map((o) => agg.nbo.topOffer[o] ?? 0), offers.map((o) => ref.scores!.topOffers![o] ?? 0)));
    }
    if (inputs && ref.inputs) {
      ref.inputs.features.forEach((feature, j) => {
        const k = inputs.features.indexOf(feature);
        const here = inputs.histograms[k];
        if (k >= 0 && here && Object.keys(here).length) entry('feature', histogramPsi(here, ref.inputs!.histograms[j] ?? {}), feature);
      });
    }
  }
  return {
    customers: { scored: agg.scored, failed: agg.failed },
    churn,
    nbo,
    rfm,
    models: agg.models.map((t) => ({ ...t, label: modelLabel(t) })).sort((a, b) => a.label.localeCompare(b.label)),
    warnings,
    drift,
    ...(inputs ? { inputs } : {}),
  };
}

function featureWarnings(f: FeatureAggregate): Warning[] {
  const out: Warning[] = [];
  if (f.n < 10 || f.constant === null) return out;
  f.constant.forEach((c, j) => {
    if (c === 'varies') return;
    const feature = f.names[j]!;
    out.push(
      c.value === null
        ? { code: 'missing_feature', feature, message: `${feature} is missing for all ${f.n} customers of the segment` }
        : { code: 'constant_feature', feature, message: `${feature} is ${c.value} for all ${f.n} customers of the segment` },
    );
  });
  if (f.defaultedRecency > 0) {
    out.push({
      code: 'defaulted_feature',
      feature: 'days_since_last_transaction',
      message: `${f.defaultedRecency} of ${f.n} customers have days_since_last_transaction = ${DEFAULTED_RECENCY}, the warehouse default for "unknown"`,
    });
  }
  return out;
}

