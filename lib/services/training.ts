import { z } from 'zod';
import packageJson from '../../package.json';
import trainingDefaults from '../../models/training.json';
import { NotFoundError, ValidationError } from '../errors';
import { logContext, telemetry } from '../observability';
import { binaryMetricsOf, isBinaryMetrics, NAME_PATTERN, type AliasRecord, type ModelManifest, type ModelRegistry, type VersionRef } from '../registry/index';
import { FEATURES } from '../catalog';
import { featureProfile, type FeatureProfile, type TrainingProfile } from '../drift';
import { csvTrainingSpec, nboTrainingSpec, churnTrainingSpec, type CsvTrainingOptions, type NboTrainingSpec } from '../training/datasets';
import { DEFAULT_THRESHOLDS, trainModel, type Family, type TrainedModel, type TrainingOptions, type TrainingOutcome, type TrainingSpec } from '../training/pipeline';
import { acceptanceRates, describePolicyValue, loggingPropensities, policyOf, policyValueReport, trainNbo, type ComparedModel, type PolicyValue } from '../training/nbo';
import { binaryMetrics, multiclassMetrics } from '../metrics';
import { readDemoSummary, type DemoSummary } from '../warehouse/demo-load';
import { demoOfferTruth } from '../warehouse/demo';
import type { WarehouseHandle } from '../warehouse/index';

export const WAREHOUSE_MODELS = ['churn', 'nbo'] as const;
export type WarehouseModel = (typeof WAREHOUSE_MODELS)[number];

/** What the training function accepts: on a schedule (serverless.yml gives the input) or invoked directly. */
export const TrainRequestSchema = z.strictObject({
  model: z.enum(WAREHOUSE_MODELS, { error: `"model" must be one of ${WAREHOUSE_MODELS.join(', ')}` }),
  promote: z.string().regex(NAME_PATTERN, '"promote" must be an alias name such as staging or production (lowercase letters, digits, - or _)').nullable().optional(),
  seed: z.number({ error: '"seed" must be a whole number' }).int('"seed" must be a whole number').nonnegative('"seed" must be a whole number').optional(),
  sample: z.number({ error: '"sample" must be a share of customers above 0 and at most 1' }).gt(0, '"sample" must be a share of customers above 0 and at most 1').lte(1, '"sample" must be a share of customers above 0 and at most 1').optional(),
});
export type TrainRequest = z.infer<typeof TrainRequestSchema>;

/** The training function's answer: the outcome in a few fields (the manifest holds everything). */
export interface TrainSummary {
  model: string;
  version: number;
  status: 'ready' | 'refused';
  refusal_reasons: string[];
  family: string;
  promoted: { alias: string; version: number } | null;
  holdout: Record<string, number | null>;
  /** Next best offer: the top-1 policy's estimated acceptance on the evaluation window. */
  policy_value?: Pick<PolicyValue, 'estimate' | 'ci_low' | 'ci_high' | 'method' | 'logging' | 'rows' | 'from' | 'to'>;
  seconds: number;
}

/** A next-best-offer version on the warehouse's evaluation window, as `evaluate nbo --json` prints it. */
export interface PolicyEvaluation {
  name: string;
  version: number;
  output_kind: string;
  data: string;
  rows: number;
  /** Acceptance models: binary metrics of P(accept) of the offers made; softmax models: multiclass metrics on the accepted ones. */
  metrics: Record<string, unknown>;
  baseline_prior: Record<string, unknown>;
  policy_value: PolicyValue;
}

type Progress = { onProgress?: (message: string) => void };

/** Customers a warehouse-trained version's input profiles are drawn from, for the base and per segment (seeded). */
const PROFILE_CUSTOMERS = 20_000;
/** Segments profiled at most (the largest are not chosen: the first in the warehouse's order). */
const PROFILE_SEGMENTS = 50;

/**
 * The inputs of the customer base and of each segment a warehouse-trained version is trained for,
 * as they stand at training: what its input drift is measured against. Not the training rows:
 * those are snapshots of customers active at each snapshot date, which no scored segment resembles;
 * and not the whole base for a segment, which differs from it by design.
 */
async function baseFeatureProfile(handle: WarehouseHandle): Promise<TrainingProfile | null> {
  const day = new Date().toISOString().slice(0, 10);
  const profile = (rows: (number | null)[][], whose: string) => featureProfile(Float64Array.from(rows.flat(), (v) => v ?? NaN), FEATURES, `${rows.length.toLocaleString('en-US')} ${whose} on ${day}, when the version was trained`);
  const rows = await handle.warehouse.sampleFeatures(PROFILE_CUSTOMERS, trainingDefaults.seed);
  if (!rows.length) return null;
  const segments: Record<string, FeatureProfile> = {};
  for (const segment of (await handle.warehouse.listSegments()).slice(0, PROFILE_SEGMENTS)) {
    const members = await handle.warehouse.sampleFeatures(PROFILE_CUSTOMERS, trainingDefaults.seed, segment.id);
    if (members.length) segments[segment.id] = profile(members, `members of ${segment.id}`);
  }
  return { ...profile(rows, 'customers of the warehouse'), segments };
}

/**
 * Training: builds the data (warehouse history or a CSV file), reads the production version to
 * compare with, has lib/training choose, gate and export the model, then publishes the version
 * (refused ones too, for the record) and promotes it when asked and every gate passed. The one
 * path the training function, `loyalty-ml train` (warehouse and CSV) and `npm start` share. The
 * warehouse is the app's (the configured secret or URL), so a deployed function trains from the
 * same warehouse it scores from.
 */
export class TrainingService {
  constructor(private readonly deps: { registry: ModelRegistry; warehouse: () => Promise<WarehouseHandle> }) {}

  /** A service over a registry and, for warehouse training, an open warehouse (benchmarks and tests). */
  static over(registry: ModelRegistry, warehouse?: WarehouseHandle): TrainingService {
    return new TrainingService({ registry, warehouse: async () => warehouse ?? Promise.reject(new ValidationError('no warehouse was given to train from')) });
  }

  /** Trains churn or next best offer from the warehouse history and publishes the new version. */
  async train(request: TrainRequest, options: Omit<TrainingOptions, 'seed'> = {}): Promise<TrainingOutcome> {
    logContext({ model: request.model });
    const started = Date.now();
    const handle = await this.deps.warehouse();
    const seed = request.seed ?? trainingDefaults.seed;
    const demo = await readDemoSummary(handle.pool);
    const featureProfile = await baseFeatureProfile(handle);
    let outcome: TrainingOutcome;
    if (request.model === 'churn') {
      const spec = await churnTrainingSpec(handle.warehouse, options.onProgress, { share: request.sample, seed });
      const achievable = demo ? `achievable AUC on this demo data (the generating process's own probabilities): ${demo.oracle.churn_auc_latest_snapshot}` : null;
      outcome = await this.trainSpec(spec, { ...options, seed, promote: request.promote ?? null, achievable, started, featureProfile });
    } else {
      if (request.sample !== undefined) throw new ValidationError('"sample" applies to churn only');
      const spec = await nboTrainingSpec(handle.warehouse, options.onProgress);
      outcome = await this.trainNboSpec(spec, { ...options, seed, promote: request.promote ?? null, demo, started, featureProfile });
    }
    logContext({ model_version: outcome.manifest.version });
    telemetry.count('TrainingRuns');
    if (outcome.manifest.status === 'refused') telemetry.count('ModelsRefused');
    return outcome;
  }

  /** Trains a binary model from a CSV file and publishes it. */
  async trainCsv(csv: CsvTrainingOptions, options: Omit<TrainingOptions, 'seed'> & { promote?: string | null } = {}): Promise<TrainingOutcome> {
    const built = await csvTrainingSpec(csv);
    const log = options.onProgress;
    for (const s of built.skipped) log?.(`left out column ${s.column}: ${s.reason}`);
    if (built.dropped) log?.(`dropped ${built.dropped} rows without a label`);
    const { spec } = built;
    const categorical = spec.columns.filter((c) => c.kind === 'categorical');
    const ordered = categorical.filter((c) => c.kind === 'categorical' && c.ordered).map((c) => c.name);
    log?.(`features: ${spec.columns.length} columns (${categorical.length} categorical${ordered.length ? `, ordered codes: ${ordered.join(', ')}` : ''}); positive class "${spec.classes[1]}"`);
    return this.trainSpec(spec, { ...options, seed: csv.seed });
  }

  /** Trains a binary or multiclass model on data already built (the warehouse's churn, a CSV file, a benchmark's table). */
  async trainSpec(spec: TrainingSpec, options: TrainingOptions & { promote?: string | null; achievable?: string | null; started?: number; featureProfile?: TrainingProfile | null } = {}): Promise<TrainingOutcome> {
    const started = options.started ?? Date.now();
    const production = await this.production(spec.name);
    const trained = await trainModel(spec, { ...options, codeVersion: options.codeVersion ?? codeVersion() }, { production });
    if (options.featureProfile) trained.draft.feature_profile = options.featureProfile;
    return this.publish(trained, options.promote ?? null, started, options.achievable ?? null, options.onProgress);
  }

  /** Trains next best offer on offer history already read and publishes it. */
  async trainNboSpec(spec: NboTrainingSpec, options: Omit<TrainingOptions, 'codeVersion'> & { promote?: string | null; demo?: DemoSummary | null; started?: number; featureProfile?: TrainingProfile | null } = {}): Promise<TrainingOutcome> {
    const started = options.started ?? Date.now();
    const log = options.onProgress ?? (() => undefined);
    const production = await this.production(spec.name);
    const trained = await trainNbo(
      spec,
      {
        families: options.families ?? (trainingDefaults.nbo.families as Family[]),
        gbt: options.gbt,
        maxEpochs: options.maxEpochs,
        seed: options.seed ?? trainingDefaults.seed,
        thresholds: { ...DEFAULT_THRESHOLDS, ...options.thresholds },
        minSends: trainingDefaults.nbo.min_sends,
        minOutcomes: trainingDefaults.nbo.min_outcomes,
        student: studentSettings(),
        codeVersion: codeVersion(),
        log,
      },
      { production },
    );
    const achievable = options.demo ? demoPolicyTruth(options.demo, spec, trained.windowPolicy, trained.policy) : null;
    if (achievable) log(achievable);
    if (options.featureProfile) trained.draft.feature_profile = options.featureProfile;
    const { windowPolicy: _, ...rest } = trained;
    return this.publish(
      { name: spec.name, bytes: rest.bytes, draft: rest.draft, candidates: rest.heads.map((h) => ({ family: `${h.offer_id}: ${h.family ?? 'constant'}`, score: h.log_loss === null ? NaN : -h.log_loss, settings: h.settings, tried: [], seconds: h.seconds })), chosen: rest.chosen, exportCheck: rest.exportCheck, nbo: { heads: rest.heads, policy: rest.policy, overlap: rest.overlap, warnings: rest.warnings } },
      options.promote ?? null,
      started,
      achievable,
      log,
    );
  }

  /**
   * A next-best-offer version's top-1 policy on the warehouse's evaluation window (the last two
   * calendar months of offers): doubly robust with the version's own acceptance probabilities as
   * the reward model, or self-normalised IPS for a softmax model, which has none.
   */
  async evaluatePolicy(name: string, ref: VersionRef, options: Progress & { seed?: number } = {}): Promise<PolicyEvaluation> {
    const { manifest, bytes } = await this.deps.registry.readModel(name, ref);
    const handle = await this.deps.warehouse();
    const spec = await nboTrainingSpec(handle.warehouse, options.onProgress);
    const log = options.onProgress ?? (() => undefined);
    const logging = loggingPropensities(spec, options.seed ?? trainingDefaults.seed, log);
    const { data } = spec;
    const K = data.offers.length;
    const D = data.columns.length;
    const test = spec.splits.test;
    const X = new Float64Array(test.length * D);
    test.forEach((r, i) => X.set(data.X.subarray(r * D, (r + 1) * D), i * D));
    const scored = await policyOf({ version: manifest.version, manifest, bytes }, X, test.length, data.columns.map((c) => c.name), data.offers);
    if (!scored.policy) throw new ValidationError(`${name} v${manifest.version} cannot be evaluated on the offer history: ${scored.reason}`, { code: 'model_not_feedable' });
    const value = policyValueReport(
      { offers: K, action: Int32Array.from(test, (r) => data.action[r]!), reward: Int32Array.from(test, (r) => data.accepted[r]!), propensity: Float64Array.from(test, (r) => logging.sent[r]!) },
      scored.acceptance,
      scored.policy,
      {
        window: spec.window,
        propensity: logging.source,
        rewardModel: scored.acceptance ? `${name} v${manifest.version} (the version evaluated)` : 'none: a softmax model has no acceptance probabilities',
        all: logging.all ? Float64Array.from(test, (r, i) => logging.all![r * K + scored.policy![i]!]!) : null,
        production: null,
      },
    );
    const demo = await readDemoSummary(handle.pool);
    if (demo) {
      const truth = demoTruthValue(demo, spec, scored.policy);
      if (truth !== null) value.true_value = truth;
    }
    log(`${name} v${manifest.version}: ${describePolicyValue(value)}`);
    const y = Int32Array.from(test, (r) => data.accepted[r]!);
    const rates = acceptanceRates(data.action, data.accepted, spec.splits.train, K);
    let metrics: Record<string, unknown>;
    let baseline: Record<string, unknown>;
    let rows = test.length;
    if (scored.acceptance) {
      metrics = { ...binaryMetrics(Float64Array.from(test, (r, i) => scored.acceptance![i * K + data.action[r]!]!), y) };
      baseline = { ...binaryMetrics(Float64Array.from(test, (r) => rates[data.action[r]!]!), y) };
    } else {
      // A softmax over accepted offers is judged as it was trained: which offer the accepted ones were.
      const accepted = [...test.keys()].filter((i) => y[i] === 1);
      rows = accepted.length;
      const labels = Int32Array.from(accepted, (i) => data.action[test[i]!]!);
      metrics = { ...multiclassMetrics(Float64Array.from(accepted.flatMap((i) => Array.from(scored.scores.subarray(i * K, (i + 1) * K)))), labels, data.offers) };
      const counts = new Array<number>(K).fill(0);
      for (const l of labels) counts[l]!++;
      baseline = { ...multiclassMetrics(Float64Array.from(accepted.flatMap(() => counts.map((c) => c / Math.max(1, labels.length)))), labels, data.offers) };
    }
    const description = scored.acceptance
      ? `warehouse evaluation window: every offer made from ${spec.window.from} to ${spec.window.to}, P(accept) of the offer made`
      : `warehouse evaluation window: the accepted offers from ${spec.window.from} to ${spec.window.to}`;
    return { name, version: manifest.version, output_kind: manifest.output.kind, data: description, rows, metrics, baseline_prior: baseline, policy_value: value };
  }

  /** The few fields a caller of the function needs. */
  static summary(outcome: TrainingOutcome): TrainSummary {
    const m = outcome.manifest;
    const holdout = m.metrics?.holdout;
    const figures: Record<string, number | null> = {};
    if (holdout) {
      if (isBinaryMetrics(holdout)) {
        const b = binaryMetricsOf(holdout);
        Object.assign(figures, { rows: b.rows, auc: b.auc, pr_auc: b.pr_auc, log_loss: b.log_loss, brier: b.brier, top_decile_lift: b.top_decile_lift, ece: b.ece });
      } else Object.assign(figures, { rows: holdout.rows, top1_accuracy: holdout.top1_accuracy, top3_accuracy: holdout.top3_accuracy, log_loss: holdout.log_loss });
    }
    const policy = outcome.nbo?.policy;
    return {
      model: m.name,
      version: m.version,
      status: m.status,
      refusal_reasons: m.refusal_reasons,
      family: outcome.chosen,
      promoted: outcome.promoted ? { alias: outcome.promoted.alias, version: outcome.promoted.version } : null,
      holdout: figures,
      ...(policy ? { policy_value: { estimate: policy.estimate, ci_low: policy.ci_low, ci_high: policy.ci_high, method: policy.method, logging: policy.logging, rows: policy.rows, from: policy.from, to: policy.to } } : {}),
      seconds: outcome.seconds,
    };
  }

  /** The version production points at, to compare the candidate with; none yet is no error. */
  private async production(name: string): Promise<ComparedModel | null> {
    const alias = await this.deps.registry.getAlias(name, 'production').catch((e: unknown) => {
      if (e instanceof NotFoundError) return null;
      throw e;
    });
    if (!alias) return null;
    const { manifest, bytes } = await this.deps.registry.readModel(name, alias.version);
    return { version: alias.version, manifest, bytes };
  }

  /** Publishes the version (refused ones too) and promotes it when asked and every gate passed. */
  private async publish(trained: TrainedModel, promote: string | null, started: number, achievable: string | null, log?: (m: string) => void): Promise<TrainingOutcome> {
    const manifest: ModelManifest = await this.deps.registry.publish(trained.name, trained.bytes, trained.draft);
    log?.(`published ${trained.name} v${manifest.version} (${manifest.status})`);
    let promoted: AliasRecord | null = null;
    if (promote && manifest.status === 'ready') {
      promoted = await this.deps.registry.promote(trained.name, promote, manifest.version, 'trained; gates passed');
      log?.(`promoted ${trained.name}@${promote} -> v${manifest.version}`);
    }
    const { bytes: _bytes, draft: _draft, name: _name, ...rest } = trained;
    return { ...rest, manifest, promoted, seconds: (Date.now() - started) / 1000, achievable };
  }
}

/** The network NBO's heads are distilled into (models/training.json `nbo.student`). */
function studentSettings() {
  const s = trainingDefaults.nbo.student;
  return {
    hidden: s.hidden,
    maxRows: s.max_rows,
    epochs: s.epochs,
    batchSize: s.batch_size,
    learningRate: s.learning_rate,
    decay: { every: s.decay_every_epochs, factor: s.decay_factor },
    maxMeanAbsDiff: s.max_mean_abs_diff,
    minSameTopOffer: s.min_same_top_offer,
  };
}

function codeVersion(): string {
  return `loyalty-ml ${packageJson.version}`;
}

/**
 * On demo data the process's acceptance probabilities are known: the true acceptance rate of a
 * policy on the window's offers, or null when the rows are not the demo's as generated.
 */
function demoTruthValue(demo: DemoSummary, spec: NboTrainingSpec, policy: Int32Array): number | null {
  if (demo.customers > 200_000) return null;
  const truth = demoOfferTruth(demo.seed, demo.customers, demo.months_advanced ?? 0, demo.offer_policy ?? 'uniform');
  let sum = 0;
  const test = spec.splits.test;
  for (let i = 0; i < test.length; i++) {
    const p = truth.get(`${spec.customerIds[test[i]!]}|${spec.offeredAt[test[i]!]}`);
    if (!p) return null;
    sum += p[policy[i]!]!;
  }
  return Math.round((sum / Math.max(1, test.length)) * 1e4) / 1e4;
}

function demoPolicyTruth(demo: DemoSummary, spec: NboTrainingSpec, policy: Int32Array, value: PolicyValue): string | null {
  const truth = demoTruthValue(demo, spec, policy);
  if (truth === null) return null;
  value.true_value = truth;
  const w = demo.oracle.nbo?.window;
  const inside = value.ci_low !== null && value.ci_high !== null && truth >= value.ci_low && truth <= value.ci_high;
  return [
    `on this demo data the process's own acceptance probabilities give the truth: this version's top offer reaches ${truth} on the window (estimated ${value.estimate}, interval ${value.ci_low}-${value.ci_high}: ${inside ? 'covers it' : 'MISSES it'})`,
    ...(w ? [`the best possible is ${w.oracle}; the campaign rules reach ${w.rules}, a random offer ${w.uniform}, the offers as sent ${w.logging}`] : []),
  ].join('; ');
}
