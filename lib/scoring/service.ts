import type { RefreshingValue } from '../cache';
import type { BaseProfile, CustomerFeatureRow } from '../warehouse/index';
import { FEATURES } from '../catalog';
import { OFFER_IDS } from '../catalog';
import { mockChurnProbability, mockOfferProbabilities } from './mock';
import type { ModelHandle, ModelProvider } from './models';
import {
  churnRisk,
  RISK_BANDS,
  round,
  churnResult,
  nboResults,
  type AllResult,
  type ChurnResult,
  type CustomerResult,
  type NboResult,
  type PredictionType,
  type ResultSource,
  type RfmResult,
} from './results';
import { FIXED_CUT_POINTS, rfmCells, scoreRfm, type RfmCutPoints } from './rfm';
import { churnCollapseWarning, featureWarnings, nboCollapseWarning, type Warning } from './warnings';

export const NOT_FOUND = 'Customer not found in warehouse';

/** What the scoring service needs from the warehouse: one query for many customers. */
export interface FeatureSource {
  getFeatures(customerIds: readonly string[]): Promise<Map<string, CustomerFeatureRow>>;
}

export interface ScoringSettings {
  churnRiskThresholds: [number, number];
  rfmCutPoints: 'quintiles' | 'fixed';
}

export interface BatchOutcome {
  type: PredictionType;
  /** Distinct ids in request order. */
  ids: string[];
  results: { customer_id: string; result: CustomerResult }[];
  errors: { customer_id: string; error: string }[];
  warnings: Warning[];
  /** Ids sent more than once (answered once). */
  duplicates: string[];
  /** Ids listed in `errors` because the deadline passed (worth retrying, unlike unknown customers). */
  timedOut: string[];
  /** With `keepInputs`: the features each found customer was scored on (segment statistics). */
  inputs: Map<string, (number | null)[]>;
  /** The date each found customer's features were valid for, when the warehouse records it. */
  asOf: Map<string, string | null>;
  /** Milliseconds spent per stage (warehouse_ms, churn_ms, nbo_ms, rfm_ms, total_ms). */
  timings: Record<string, number>;
}

function emptyOutcome(type: PredictionType, ids: string[], duplicates: string[]): BatchOutcome {
  return { type, ids, results: [], errors: [], warnings: [], duplicates, timedOut: [], inputs: new Map(), asOf: new Map(), timings: {} };
}

function timedOut(outcome: BatchOutcome, ids: string[], stage: string, deadlineMs: number): void {
  const limit = deadlineMs >= 10_000 ? `${Math.round(deadlineMs / 1000)} s` : `${(deadlineMs / 1000).toFixed(1)} s`;
  for (const id of ids) outcome.errors.push({ customer_id: id, error: `Timed out: not scored within ${limit} (${stage})` });
  outcome.timedOut.push(...ids);
}

export type ScorePart = 'churn' | 'nbo' | 'rfm';

export interface ScoreOptions {
  parts?: ScorePart[];
  keepInputs?: boolean;
}

/**
 * A chunk's scores as columns (segment workers): no object per customer. Probabilities are
 * rounded as answers round them; `risk` is 0 low, 1 medium, 2 high; `top` indexes `classes`.
 */
export interface MatrixScores {
  ids: string[];
  churn?: { p: Float64Array; risk: Uint8Array; source: ResultSource };
  nbo?: { classes: readonly string[]; P: Float64Array; top: Uint8Array; confidence: Float64Array; source: ResultSource };
  /** RFM as cell indices into RFM_CELLS (score and segment). */
  rfm?: { cell: Uint8Array; source: ResultSource };
  /** How the chunk was served (mock answers, stale models, fixed RFM cut points). */
  warnings: Warning[];
}

/** The deadline passed before every model had answered. */
export class ScoringTimeoutError extends Error {}

const RECENCY = FEATURES.indexOf('days_since_last_transaction');
const FREQUENCY = FEATURES.indexOf('transaction_count_90d');
const MONETARY = FEATURES.indexOf('total_revenue_90d');

class DeadlineExceeded extends Error {}

/**
 * Scores a batch of customers: one warehouse query for all of them, one ONNX run per model for the
 * whole batch, RFM by rules. Customers the warehouse does not know are reported one by one; when the
 * deadline passes, whatever has finished is returned and the rest are reported as timed out.
 */
export class ScoringService {
  constructor(
    private readonly deps: {
      features: FeatureSource;
      models: Pick<ModelProvider, 'get'>;
      profile: Pick<RefreshingValue<BaseProfile>, 'get'>;
      settings: ScoringSettings;
    },
  ) {}

  /**
   * Scores distinct customers. `parts` narrows `type: 'all'` to some of churn, nbo and rfm
   * (segment runs score only the types asked for); `keepInputs` keeps each customer's features.
   */
  async score(ids: string[], type: PredictionType, deadlineMs: number, options: ScoreOptions = {}): Promise<BatchOutcome> {
    const deadline = Date.now() + deadlineMs;
    const distinct = [...new Set(ids)];
    const duplicates: string[] = [];
    if (distinct.length !== ids.length) {
      const seen = new Set<string>();
      const repeated = new Set<string>();
      for (const id of ids) (seen.has(id) ? repeated : seen).add(id);
      duplicates.push(...repeated);
    }
    const outcome = emptyOutcome(type, distinct, duplicates);

    const started = performance.now();
    const profilePromise = this.profile();
    let rows: Map<string, CustomerFeatureRow>;
    try {
      rows = await withDeadline(this.deps.features.getFeatures(distinct), deadline);
    } catch (error) {
      if (error instanceof DeadlineExceeded) {
        timedOut(outcome, distinct, 'waiting for the warehouse', deadlineMs);
        return outcome;
      }
      throw error;
    }
    outcome.timings.warehouse_ms = performance.now() - started;
    const found = distinct.filter((id) => rows.has(id));
    for (const id of found) outcome.asOf.set(id, rows.get(id)!.asOf ?? null);
    await this.scoreFound(outcome, found, found.map((id) => rows.get(id)!.features), profilePromise, deadline, deadlineMs, options);
    for (const id of distinct) if (!rows.has(id)) outcome.errors.push({ customer_id: id, error: NOT_FOUND });
    outcome.timings.total_ms = performance.now() - started;
    return outcome;
  }

  /**
   * Scores customers whose features are already at hand (the part of `score` after the warehouse
   * query): what segment workers and benchmarks measure as the in-process scoring path.
   */
  async scoreFeatures(ids: string[], features: (number | null)[][], type: PredictionType, options: ScoreOptions & { deadlineMs?: number } = {}): Promise<BatchOutcome> {
    const deadlineMs = options.deadlineMs ?? 60_000;
    const outcome = emptyOutcome(type, ids, []);
    const started = performance.now();
    await this.scoreFound(outcome, ids, features, this.profile(), Date.now() + deadlineMs, deadlineMs, options);
    outcome.timings.total_ms = performance.now() - started;
    return outcome;
  }

  /**
   * Scores a matrix of features (row-major in FEATURES order, NaN = missing) into columns: the
   * segment worker's path, one onnxruntime run per model and no per-customer objects. Throws
   * ScoringTimeoutError when the deadline passes first.
   */
  async scoreMatrix(
    ids: string[],
    X: Float64Array,
    /** `quintiles`: the RFM cut points' basis the caller read (workers never read the warehouse); null: the fixed cut points, with a warning. */
    options: { parts: readonly ScorePart[]; deadlineMs: number; quintiles: (BaseProfile['quintiles'] & { customers: number }) | null },
  ): Promise<MatrixScores> {
    const deadline = Date.now() + options.deadlineMs;
    const n = ids.length;
    const out: MatrixScores = { ids, warnings: [] };
    const rows = () => Array.from({ length: n }, (_, i) => Array.from(X.subarray(i * FEATURES.length, (i + 1) * FEATURES.length), (v) => (Number.isNaN(v) ? null : v)));
    try {
      for (const part of options.parts) {
        if (n === 0) break;
        if (part === 'churn') {
          const { handle, warnings } = await withDeadline(this.deps.models.get('churn'), deadline);
          out.warnings.push(...warnings);
          const p = new Float64Array(n);
          const risk = new Uint8Array(n);
          const thresholds = this.deps.settings.churnRiskThresholds;
          let raw: ArrayLike<number>;
          let stride = 1;
          let at = 0;
          if (handle.kind === 'mock') raw = rows().map(mockChurnProbability);
          else {
            raw = await withDeadline(handle.runner.predictMatrix(X, n, FEATURES), deadline);
            stride = 2;
            at = handle.manifest.output.classes.indexOf(handle.manifest.output.positive_class!);
          }
          for (let i = 0; i < n; i++) {
            const v = raw[i * stride + at]!;
            p[i] = round(v);
            risk[i] = RISK_BANDS.indexOf(churnRisk(v, thresholds));
          }
          out.churn = { p, risk, source: sourceOf('churn', handle) };
        } else if (part === 'nbo') {
          const { handle, warnings } = await withDeadline(this.deps.models.get('nbo'), deadline);
          out.warnings.push(...warnings);
          const classes = handle.kind === 'mock' ? OFFER_IDS : handle.manifest.output.classes;
          const P = handle.kind === 'mock' ? Float64Array.from(rows().flatMap(mockOfferProbabilities)) : await withDeadline(handle.runner.predictMatrix(X, n, FEATURES), deadline);
          const k = classes.length;
          const top = new Uint8Array(n);
          const confidence = new Float64Array(n);
          for (let i = 0; i < n; i++) {
            // The first best offer in class order, as the ranked answer's first offer.
            let best = 0;
            for (let c = 1; c < k; c++) if (P[i * k + c]! > P[i * k + best]!) best = c;
            top[i] = best;
            confidence[i] = round(P[i * k + best]!);
          }
          out.nbo = { classes, P, top, confidence, source: sourceOf('nbo', handle) };
        } else {
          const q = options.quintiles;
          const cuts = this.rfmCuts(q && { quintiles: q, customers: q.customers }, out.warnings);
          const cell = new Uint8Array(n);
          rfmCells(X, n, FEATURES.length, { recency: RECENCY, frequency: FREQUENCY, monetary: MONETARY }, cuts, cell);
          out.rfm = { cell, source: { type: 'rules', name: 'rfm', cut_points: cuts.basis } };
        }
      }
    } catch (error) {
      if (error instanceof DeadlineExceeded) throw new ScoringTimeoutError(`not scored within ${Math.round(options.deadlineMs / 1000)} s`);
      throw error;
    }
    return out;
  }

  /** The base profile, or null when it cannot be had (RFM then falls back to fixed cut points). */
  private profile(): Promise<BaseProfile | null> {
    return this.deps.profile.get().then(
      (p) => p.value,
      () => null,
    );
  }

  private async scoreFound(
    outcome: BatchOutcome,
    found: string[],
    features: (number | null)[][],
    profilePromise: Promise<BaseProfile | null>,
    deadline: number,
    deadlineMs: number,
    options: ScoreOptions,
  ): Promise<void> {
    const type = outcome.type;
    if (options.keepInputs) found.forEach((id, i) => outcome.inputs.set(id, features[i]!));
    const parts: { churn?: ChurnResult[]; nbo?: NboResult[]; rfm?: RfmResult[] } = {};
    const wanted: readonly ScorePart[] = type === 'all' ? (options.parts ?? ['rfm', 'churn', 'nbo']) : [type];
    let profile: BaseProfile | null = null;
    try {
      profile = await withDeadline(profilePromise, deadline);
      for (const part of wanted) {
        if (found.length === 0) break;
        const t0 = performance.now();
        if (part === 'rfm') parts.rfm = this.rfm(found, features, profile, outcome.warnings);
        else if (part === 'churn') parts.churn = await withDeadline(this.churn(found, features, outcome.warnings), deadline);
        else parts.nbo = await withDeadline(this.nbo(found, features, outcome.warnings), deadline);
        outcome.timings[`${part}_ms`] = performance.now() - t0;
      }
    } catch (error) {
      if (!(error instanceof DeadlineExceeded)) throw error;
    }
    const complete = wanted.every((p) => parts[p] !== undefined) || found.length === 0;
    if (complete) {
      found.forEach((id, i) => outcome.results.push({ customer_id: id, result: this.combine(type, id, parts, i) }));
    } else {
      timedOut(outcome, found, `${wanted.filter((p) => parts[p] === undefined).join(' and ')} not finished`, deadlineMs);
    }
    outcome.warnings.unshift(...featureWarnings(FEATURES, features, profile));
  }

  private combine(type: PredictionType, id: string, parts: { churn?: ChurnResult[]; nbo?: NboResult[]; rfm?: RfmResult[] }, i: number): CustomerResult {
    if (type === 'churn') return parts.churn![i]!;
    if (type === 'nbo') return parts.nbo![i]!;
    if (type === 'rfm') return parts.rfm![i]!;
    const all: Partial<AllResult> = { customer_id: id };
    if (parts.churn) all.churn = parts.churn[i]!;
    if (parts.nbo) all.nbo = parts.nbo[i]!;
    if (parts.rfm) all.rfm = parts.rfm[i]!;
    return all as AllResult;
  }

  /** The RFM cut points in force (a warning when the quintiles are wanted but unavailable). */
  private rfmCuts(profile: Pick<BaseProfile, 'quintiles' | 'customers'> | null, warnings: Warning[]): RfmCutPoints {
    if (this.deps.settings.rfmCutPoints !== 'quintiles') return FIXED_CUT_POINTS;
    if (profile) return { ...profile.quintiles, basis: 'quintiles', customers: profile.customers };
    warnings.push({ code: 'rfm_fixed_cut_points', message: 'customer-base quintiles are unavailable (warehouse statistics failed); RFM scores use the fixed cut points' });
    return FIXED_CUT_POINTS;
  }

  private rfm(ids: string[], features: (number | null)[][], profile: BaseProfile | null, warnings: Warning[]): RfmResult[] {
    const cuts = this.rfmCuts(profile, warnings);
    const source: ResultSource = { type: 'rules', name: 'rfm', cut_points: cuts.basis };
    return ids.map((id, i) => {
      const f = features[i]!;
      const scores = scoreRfm({ recency_days: f[RECENCY] ?? null, frequency: f[FREQUENCY] ?? null, monetary: f[MONETARY] ?? null }, cuts);
      return { customer_id: id, ...scores, source };
    });
  }

  private async churn(ids: string[], features: (number | null)[][], warnings: Warning[]): Promise<ChurnResult[]> {
    const { handle, warnings: modelWarnings } = await this.deps.models.get('churn');
    warnings.push(...modelWarnings);
    const thresholds = this.deps.settings.churnRiskThresholds;
    let p: number[];
    if (handle.kind === 'mock') p = features.map(mockChurnProbability);
    else {
      const P = await handle.runner.predictRows(features, FEATURES);
      const pos = handle.manifest.output.classes.indexOf(handle.manifest.output.positive_class!);
      p = ids.map((_, i) => P[i * 2 + pos]!);
    }
    const collapse = churnCollapseWarning(p, 'churn');
    if (collapse) warnings.push(collapse);
    const source = sourceOf('churn', handle);
    return ids.map((id, i) => churnResult(id, p[i]!, thresholds, source));
  }

  private async nbo(ids: string[], features: (number | null)[][], warnings: Warning[]): Promise<NboResult[]> {
    const { handle, warnings: modelWarnings } = await this.deps.models.get('nbo');
    warnings.push(...modelWarnings);
    const source = sourceOf('nbo', handle);
    let results: NboResult[];
    if (handle.kind === 'mock') {
      results = nboResults(ids, OFFER_IDS, features.flatMap(mockOfferProbabilities), source);
    } else {
      results = nboResults(ids, handle.manifest.output.classes, await handle.runner.predictRows(features, FEATURES), source);
    }
    const collapse = nboCollapseWarning(results, 'nbo');
    if (collapse) warnings.push(collapse);
    return results;
  }
}

/** An answer's source; NBO's says what its probabilities are (acceptance, or a softmax of an older version). */
function sourceOf(name: string, handle: ModelHandle): ResultSource {
  const probabilities = name === 'nbo' ? { probabilities: handle.kind === 'mock' || handle.manifest.output.kind === 'multilabel' ? ('acceptance' as const) : ('softmax' as const) } : {};
  return handle.kind === 'mock' ? { type: 'mock', name, ...probabilities } : { type: 'model', name, version: handle.manifest.version, alias: handle.alias, ...probabilities };
}

async function withDeadline<T>(promise: Promise<T>, deadline: number): Promise<T> {
  const remaining = deadline - Date.now();
  if (remaining <= 0) throw new DeadlineExceeded();
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DeadlineExceeded()), remaining);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
