import type { RefreshingValue } from '../cache';
import type { BaseProfile, CustomerFeatureRow } from '../warehouse/index';
import { FEATURES, OFFER_IDS, OFFER_NAMES } from '../catalog';
import { backgroundSubset, type BackgroundRows, type ExplanationMethod } from '../explain/background';
import { explainRows, toReasons, typicalValues, type Reasons, type Target } from '../explain/reasons';
import { addExplanations, emptySums, type ContributionSums } from '../explain/summary';
import { idHash } from '../random';
import { mockChurnProbability, mockOfferProbabilities } from './mock';
import type { ModelHandle, ModelProvider } from './models';
import {
  churnRisk,
  RISK_BANDS,
  round,
  nboResults,
  type AllResult,
  type ChurnResult,
  type CustomerResult,
  type NboResult,
  type PredictionType,
  type ResultSource,
  type RfmResult,
} from './results';
import { FIXED_CUT_POINTS, rfmCells, rfmScoresOfCell, type RfmCutPoints } from './rfm';
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
  /** Each churn and NBO answer carries its reasons (exact Shapley values over the version's background). */
  explain?: boolean;
}

/**
 * A chunk's scores as columns (segment workers): no object per customer. Probabilities are
 * rounded as answers round them; `risk` is 0 low, 1 medium, 2 high; `top` indexes `classes`.
 */
export interface MatrixScores {
  ids: string[];
  /** `contributions`: the summed reasons of the rows asked for by `explainSample` (null: none could be had). */
  churn?: { p: Float64Array; risk: Uint8Array; source: ResultSource; reasons?: (Reasons | null)[]; contributions?: ContributionSums | null };
  nbo?: { classes: readonly string[]; P: Float64Array; top: Uint8Array; confidence: Float64Array; source: ResultSource; reasons?: (Reasons | null)[] };
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
    // The models the answer needs load while the warehouse answers (a cold start's registry read,
    // checksum and session overlap the query); scoring awaits the same loads, and reports their errors.
    for (const part of type === 'all' ? (options.parts ?? ['churn', 'nbo']) : [type]) {
      if (part !== 'rfm') this.deps.models.get(part).catch(() => undefined);
    }
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
    /** `explainSample`: rows whose churn reasons are summed into `churn.contributions` (a segment's mean reasons), within `explainBudgetMs`. */
    options: { parts: readonly ScorePart[]; deadlineMs: number; quintiles: (BaseProfile['quintiles'] & { customers: number }) | null; explainSample?: Int32Array; explainBudgetMs?: number },
  ): Promise<MatrixScores> {
    const out: MatrixScores = { ids, warnings: [] };
    const q = options.quintiles;
    try {
      await this.scoreColumns(out, X, options.parts, Date.now() + options.deadlineMs, q && { quintiles: q, customers: q.customers }, { explain: false, batchWarnings: false, timings: {}, explainSample: options.explainSample, explainBudgetMs: options.explainBudgetMs });
    } catch (error) {
      if (error instanceof DeadlineExceeded) throw new ScoringTimeoutError(`not scored within ${Math.round(options.deadlineMs / 1000)} s`);
      throw error;
    }
    return out;
  }

  /**
   * The one scoring core: fills `out` part by part (a part appears once it is complete), one
   * onnxruntime run per model over the whole matrix, and with `explain` each churn and NBO
   * answer's reasons from the same matrix. Throws DeadlineExceeded when the deadline passes.
   */
  private async scoreColumns(
    out: MatrixScores,
    X: Float64Array,
    parts: readonly ScorePart[],
    deadline: number,
    profile: Pick<BaseProfile, 'quintiles' | 'customers'> | null,
    /** `batchWarnings`: warn when a batch's answers collapse (answers; segment statistics judge a whole run). */
    options: { explain: boolean; batchWarnings: boolean; timings: Record<string, number>; explainSample?: Int32Array; explainBudgetMs?: number },
  ): Promise<void> {
    const n = out.ids.length;
    const rows = () => Array.from({ length: n }, (_, i) => Array.from(X.subarray(i * FEATURES.length, (i + 1) * FEATURES.length), (v) => (Number.isNaN(v) ? null : v)));
    for (const part of parts) {
      if (n === 0) break;
      const t0 = performance.now();
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
        const collapse = options.batchWarnings ? churnCollapseWarning(stride === 1 ? raw : Float64Array.from({ length: n }, (_, i) => raw[i * stride + at]!), 'churn') : null;
        if (collapse) out.warnings.push(collapse);
        const reasons = options.explain ? await withDeadline(this.reasons('churn', handle, X, n, new Uint8Array(n).fill(at), () => ({ kind: 'churn' }), out.warnings), deadline) : undefined;
        const contributions = options.explainSample?.length ? await withDeadline(this.sampleContributions(handle, X, out.ids, options.explainSample, at, options.explainBudgetMs ?? Infinity), deadline) : undefined;
        out.churn = { p, risk, source: sourceOf('churn', handle), reasons, ...(contributions !== undefined ? { contributions } : {}) };
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
        const collapse = options.batchWarnings ? nboCollapseWarning(classes, top, confidence, 'nbo') : null;
        if (collapse) out.warnings.push(collapse);
        const reasons = options.explain ? await withDeadline(this.reasons('nbo', handle, X, n, top, (i) => ({ kind: 'offer', name: OFFER_NAMES.get(classes[top[i]!]!) ?? classes[top[i]!]! }), out.warnings), deadline) : undefined;
        out.nbo = { classes, P, top, confidence, source: sourceOf('nbo', handle), reasons };
      } else {
        const cuts = this.rfmCuts(profile, out.warnings);
        const cell = new Uint8Array(n);
        rfmCells(X, n, FEATURES.length, { recency: RECENCY, frequency: FREQUENCY, monetary: MONETARY }, cuts, cell);
        out.rfm = { cell, source: { type: 'rules', name: 'rfm', cut_points: cuts.basis } };
      }
      options.timings[`${part}_ms`] = performance.now() - t0;
    }
  }

  /**
   * Each record's reasons for output column `column[i]`, or nulls with a warning saying why there
   * are none (mock answers, a version without a background, a model that takes no numeric matrix).
   */
  private async reasons(name: string, handle: ModelHandle, X: Float64Array, n: number, column: Uint8Array, target: (i: number) => Target, warnings: Warning[]): Promise<(Reasons | null)[]> {
    const none = (why: string) => {
      warnings.push({ code: 'reasons_unavailable', model: name, message: `${name} answers carry no reasons: ${why}` });
      return new Array<Reasons | null>(n).fill(null);
    };
    const e = explainable(name, handle);
    if ('why' in e) return none(e.why);
    const { manifest, runner, spec, order } = e;
    const Xm = runner.toFeatureOrder(X, n, FEATURES, order);
    const features = manifest.input.features.map((f) => f.name);
    const explained = await explainRows(spec, (Z, rows) => runner.predictEncoded(Z, rows), Xm, n, runner.width, column);
    const typical = this.typical(manifest, spec.background);
    const d = features.length;
    return explained.map((e, i) => toReasons(e, Xm.subarray(i * d, (i + 1) * d), features, spec.method, target(i), typical));
  }

  /**
   * The churn contributions of the rows `sample` of X, summed (null when the version cannot be
   * explained), in steps of 5 rows until all are done or `budgetMs` is spent (at least one step).
   * Exact Shapley over coalitions costs 2^d model rows per background row: each sampled member is
   * explained against SEGMENT_BACKGROUND of the version's background rows, drawn at random for it
   * (seeded by its id, like the sample itself). Shapley values are linear in the background's
   * average, so its contributions estimate the full background's without bias, at a fraction of
   * the cost, and the interval across members carries that draw too. The closed form (logistic)
   * uses them all.
   */
  private async sampleContributions(handle: ModelHandle, X: Float64Array, ids: readonly string[], sample: Int32Array, column: number, budgetMs: number): Promise<ContributionSums | null> {
    const e = explainable('churn', handle);
    if ('why' in e) return null;
    const { manifest, runner, spec, order } = e;
    const started = performance.now();
    const d = FEATURES.length;
    const sums = emptySums(manifest.input.features.map((f) => f.name));
    const predict = (Z: Float64Array, rows: number) => runner.predictEncoded(Z, rows);
    const subset = spec.method === 'coalitions' && spec.background.length > SEGMENT_BACKGROUND;
    for (let from = 0; from < sample.length && (from === 0 || performance.now() - started < budgetMs); from += 5) {
      const rows = sample.subarray(from, from + 5);
      const Xs = new Float64Array(rows.length * d);
      rows.forEach((r, i) => Xs.set(X.subarray(r * d, (r + 1) * d), i * d));
      const Xm = runner.toFeatureOrder(Xs, rows.length, FEATURES, order);
      if (!subset) {
        addExplanations(sums, await explainRows(spec, predict, Xm, rows.length, runner.width, new Uint8Array(rows.length).fill(column)));
        continue;
      }
      for (let i = 0; i < rows.length; i++) {
        const background = backgroundSubset(spec.background, SEGMENT_BACKGROUND, idHash(ids[rows[i]!]!));
        addExplanations(sums, await explainRows({ method: spec.method, background }, predict, Xm.subarray(i * order.length, (i + 1) * order.length), 1, runner.width, [column]));
      }
    }
    return sums;
  }

  private readonly typicalCache = new WeakMap<object, (number | null)[]>();

  /** The background's median per feature, once per loaded version. */
  private typical(manifest: object, background: BackgroundRows): (number | null)[] {
    let t = this.typicalCache.get(manifest);
    if (!t) this.typicalCache.set(manifest, (t = typicalValues(background)));
    return t;
  }

  /** The base profile, or null when it cannot be had (RFM then falls back to fixed cut points). */
  private profile(): Promise<BaseProfile | null> {
    return this.deps.profile.get().then(
      (p) => p.value,
      () => null,
    );
  }

  /** Scores the customers found, from one matrix, and builds their answers (the edge: objects exist only here). */
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
    const wanted: readonly ScorePart[] = type === 'all' ? (options.parts ?? ['rfm', 'churn', 'nbo']) : [type];
    const d = FEATURES.length;
    const X = new Float64Array(found.length * d);
    for (let i = 0; i < features.length; i++) {
      const row = features[i]!;
      for (let j = 0; j < d; j++) X[i * d + j] = row[j] ?? NaN;
    }
    const scores: MatrixScores = { ids: found, warnings: [] };
    let profile: BaseProfile | null = null;
    try {
      profile = await withDeadline(profilePromise, deadline);
      await this.scoreColumns(scores, X, wanted, deadline, profile, { explain: options.explain === true, batchWarnings: true, timings: outcome.timings });
    } catch (error) {
      if (!(error instanceof DeadlineExceeded)) throw error;
    }
    // Feature warnings first: they say what the inputs were before anything says how they were served.
    outcome.warnings.push(...featureWarnings(FEATURES, X, found.length, profile), ...scores.warnings);
    const missing = found.length === 0 ? [] : wanted.filter((p) => scores[p] === undefined);
    if (missing.length) {
      timedOut(outcome, found, `${missing.join(' and ')} not finished`, deadlineMs);
      return;
    }
    const answers = answersOf(scores, X);
    found.forEach((id, i) => outcome.results.push({ customer_id: id, result: combine(type, id, answers, i) }));
  }

  /** The RFM cut points in force (a warning when the quintiles are wanted but unavailable). */
  private rfmCuts(profile: Pick<BaseProfile, 'quintiles' | 'customers'> | null, warnings: Warning[]): RfmCutPoints {
    if (this.deps.settings.rfmCutPoints !== 'quintiles') return FIXED_CUT_POINTS;
    if (profile) return { ...profile.quintiles, basis: 'quintiles', customers: profile.customers };
    warnings.push({ code: 'rfm_fixed_cut_points', message: 'customer-base quintiles are unavailable (warehouse statistics failed); RFM scores use the fixed cut points' });
    return FIXED_CUT_POINTS;
  }
}

type Answers = { churn?: ChurnResult[]; nbo?: NboResult[]; rfm?: RfmResult[] };

/** The answer objects of scored columns. */
function answersOf(scores: MatrixScores, X: Float64Array): Answers {
  const ids = scores.ids;
  const answers: Answers = {};
  if (scores.churn) {
    const { p, risk, source, reasons } = scores.churn;
    answers.churn = ids.map((id, i) => {
      const r: ChurnResult = { customer_id: id, churn_probability: p[i]!, churn_risk: RISK_BANDS[risk[i]!]!, source };
      if (reasons) r.reasons = reasons[i]!;
      return r;
    });
  }
  if (scores.nbo) {
    const { classes, P, source, reasons } = scores.nbo;
    answers.nbo = nboResults(ids, classes, P, source, reasons);
  }
  if (scores.rfm) {
    const { cell, source } = scores.rfm;
    const value = (i: number, j: number) => (Number.isNaN(X[i * FEATURES.length + j]!) ? null : X[i * FEATURES.length + j]!);
    answers.rfm = ids.map((id, i) => ({ customer_id: id, ...rfmScoresOfCell(cell[i]!, { recency_days: value(i, RECENCY), frequency: value(i, FREQUENCY), monetary: value(i, MONETARY) }), source }));
  }
  return answers;
}

function combine(type: PredictionType, id: string, parts: Answers, i: number): CustomerResult {
  if (type === 'churn') return parts.churn![i]!;
  if (type === 'nbo') return parts.nbo![i]!;
  if (type === 'rfm') return parts.rfm![i]!;
  const all: Partial<AllResult> = { customer_id: id };
  if (parts.churn) all.churn = parts.churn[i]!;
  if (parts.nbo) all.nbo = parts.nbo[i]!;
  if (parts.rfm) all.rfm = parts.rfm[i]!;
  return all as AllResult;
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

/** Background rows each sampled segment member is explained against (coalitions; see sampleContributions). */
const SEGMENT_BACKGROUND = 20;

type ServedModel = Extract<ModelHandle, { kind: 'model' }>;
type ServedManifest = ServedModel['manifest'];
type ServedRunner = ServedModel['runner'];

/** A served version's explanation and feature order, or why its answers cannot be explained. */
type Explainable = { why: string } | { manifest: ServedManifest; runner: ServedRunner; spec: { method: ExplanationMethod; background: BackgroundRows }; order: Int32Array };

function explainable(name: string, handle: ModelHandle): Explainable {
  if (handle.kind === 'mock') return { why: "they are mock answers, not a model's" };
  const { manifest, runner } = handle;
  const spec = manifest.explanation;
  if (!spec?.background?.length) return { why: `${name} v${manifest.version} has no background to explain against (${spec?.source ?? 'published before versions carried one'}); publish it with --background FILE.csv` };
  const order = runner.featureOrder(FEATURES);
  if (!order) return { why: `${name} v${manifest.version} takes encoded or text inputs` };
  return { manifest, runner, spec: { method: spec.method, background: spec.background }, order };
}
