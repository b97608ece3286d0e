import { argmaxPolicy, estimatePolicyValue, pairedDifference, type Estimate, type LoggedOffers } from '../decisions/policy-value';
import { describeUnsupported, overlapReport, type OverlapReport } from '../decisions/overlap';
import { ModelRunner } from '../inference/runner';
import { prepareModel } from '../inference/validate';
import { binaryMetrics, scoreFingerprint } from '../metrics';
import type { ManifestDraft, ModelManifest, PolicyValue } from '../registry/index';

export type { PolicyValue } from '../registry/index';
import { distillAcceptance, fidelity, fitAcceptance, type FittedAcceptance, type HeadReport, type StudentOptions } from './acceptance';
import type { NboTrainingSpec } from './datasets';
import { exportGraph, float32Rows, OUTPUT_NAME, verifyExport } from './export';
import { evaluateGates, type GateThresholds } from './gates';
import { estimateLoggingPolicy, PROPENSITY_FLOOR } from './logging-policy';
import { trainedExplanation } from '../explain/background';
import { holdoutImportance } from './importance';
import { featureProfile } from '../drift';
import { timePlan, type Family } from './selection';
import type { GbtParams } from './gbt';

/**
 * Next best offer, trained: acceptance heads learnt from every offer made, the logging policy's
 * propensities (logged, or estimated from the history), overlap, the off-policy estimate of the
 * top-1 policy on the evaluation window beside the logging policy's observed rate and production's
 * estimate, the gates, and the ONNX graph verified against the trainer. Everything to publish, and
 * nothing published: the training service does the registry's part.
 */

/** A registry version to compare with (production, read by the service). */
export interface ComparedModel {
  version: number;
  manifest: ModelManifest;
  bytes: Uint8Array;
}

export interface NboTrainingOptions {
  families: Family[];
  gbt?: Partial<GbtParams>;
  maxEpochs?: number;
  seed: number;
  thresholds: GateThresholds;
  minSends: number;
  minOutcomes: number;
  /** The network the heads are distilled into; null serves the heads themselves. */
  student: (Omit<StudentOptions, 'seed'> & { maxMeanAbsDiff: number; minSameTopOffer: number }) | null;
  codeVersion: string;
  log: (message: string) => void;
}

export interface TrainedNbo {
  bytes: Uint8Array;
  draft: ManifestDraft;
  heads: HeadReport[];
  chosen: string;
  exportCheck: { maxAbsDiff: number; rows: number };
  warnings: string[];
  policy: PolicyValue;
  overlap: OverlapReport;
  /** The offer the version sends each row of the evaluation window (index into the offers). */
  windowPolicy: Int32Array;
}

const VERIFY_TRAINING_ROWS = 2000;

export async function trainNbo(spec: NboTrainingSpec, options: NboTrainingOptions, context: { production: ComparedModel | null }): Promise<TrainedNbo> {
  const { data } = spec;
  const log = options.log;
  const K = data.offers.length;
  const D = data.columns.length;
  log(`rows: ${spec.splits.train.length} offers to learn from, ${spec.splits.test.length} to evaluate on (${spec.splits.description})`);

  const logging = loggingPropensities(spec, options.seed, log);
  const overlap = overlapReport({ X: data.X, features: data.columns.map((c) => c.name), action: data.action, accepted: data.accepted, propensity: logging.sent, offerIds: data.offers, source: logging.source });
  const warnings = overlap.unsupported.map(describeUnsupported);
  for (const o of overlap.offers) log(`overlap: ${o.offer_id}: ${o.sent} sends (${o.accepted} accepted), propensity median ${o.propensity.p50}, effective sends ${Math.round(o.effective_sends)}`);
  for (const w of warnings) log(`warning: ${w}`);

  const fit = fitAcceptance(data, spec.splits.train, { families: options.families, gbt: options.gbt, maxEpochs: options.maxEpochs, seed: options.seed, minSends: options.minSends, minOutcomes: options.minOutcomes, log });
  for (const w of fit.warnings) log(`warning: ${w}`);
  warnings.push(...fit.warnings);

  // Out of fold: each offer made in the training months, predicted by a fold model that never saw it.
  const covered = Uint32Array.from(Array.from(spec.splits.train).filter((r) => !Number.isNaN(fit.oof[r]!)));
  const offerRates = acceptanceRates(data.action, data.accepted, spec.splits.train, K);
  const oofP = Float64Array.from(covered, (r) => fit.oof[r]!);
  const oofY = Int32Array.from(covered, (r) => data.accepted[r]!);
  const oofMetrics = binaryMetrics(oofP, oofY);
  const oofBaseline = binaryMetrics(Float64Array.from(covered, (r) => offerRates[data.action[r]!]!), oofY);

  // The evaluation window: every offer of the last two months.
  const test = spec.splits.test;
  const Xtest = float32Rows(data.X, test, D);
  const served = serveable(fit.model, spec, Xtest, options, log);
  const Q = served.model.probabilities(Xtest, test.length);
  const windowY = Int32Array.from(test, (r) => data.accepted[r]!);
  const sentP = Float64Array.from(test, (r, i) => Q[i * K + data.action[r]!]!);
  const holdout = binaryMetrics(sentP, windowY);
  const baseline = binaryMetrics(Float64Array.from(test, (r) => offerRates[data.action[r]!]!), windowY);
  const perOffer = data.offers.map((offer_id, k) => {
    const rows = [...test.keys()].filter((i) => data.action[test[i]!] === k);
    const p = rows.map((i) => sentP[i]!);
    const y = rows.map((i) => windowY[i]!);
    const m = rows.length && y.some((v) => v) && y.some((v) => !v) ? binaryMetrics(p, y) : null;
    return { offer_id, sent: rows.length, accepted: y.reduce((a, b) => a + b, 0), mean_predicted: rows.length ? round(p.reduce((a, b) => a + b, 0) / rows.length) : null, auc: m ? round(m.auc) : null, log_loss: m ? round(m.log_loss) : null };
  });

  const logged: LoggedOffers = { offers: K, action: Int32Array.from(test, (r) => data.action[r]!), reward: windowY, propensity: Float64Array.from(test, (r) => logging.sent[r]!) };
  const policy = argmaxPolicy(Q, K);
  let productionPolicy: { version: number; policy: Int32Array } | null = null;
  let productionMetrics: { version: number; comparable: boolean; reason: string | null; metrics: ReturnType<typeof binaryMetrics> | null } | null = null;
  if (context.production) {
    const scored = await policyOf(context.production, Xtest, test.length, data.columns.map((c) => c.name), data.offers);
    productionPolicy = scored.policy ? { version: context.production.version, policy: scored.policy } : null;
    productionMetrics = {
      version: context.production.version,
      comparable: scored.acceptance !== null,
      reason: scored.reason,
      metrics: scored.acceptance ? binaryMetrics(Float64Array.from(test, (r, i) => scored.acceptance![i * K + data.action[r]!]!), windowY) : null,
    };
  }
  const value = policyValueReport(logged, Q, policy, {
    window: spec.window,
    propensity: logging.source,
    rewardModel: 'this version',
    all: logging.all ? Float64Array.from(test, (r, i) => logging.all![r * K + policy[i]!]!) : null,
    production: productionPolicy,
  });
  log(`policy value on ${value.rows} offers of ${value.from} to ${value.to}: ${describePolicyValue(value)}`);

  const gates = evaluateGates(
    {
      kind: 'acceptance',
      probabilities: oofP,
      auc: oofMetrics.auc,
      topDecileLift: oofMetrics.top_decile_lift,
      logLoss: oofMetrics.log_loss,
      baselineLogLoss: oofBaseline.log_loss,
      policy: { estimate: value.estimate ?? NaN, ciLow: value.ci_low ?? NaN, ciHigh: value.ci_high ?? NaN, method: value.method, rows: value.rows, from: value.from, to: value.to, logging: value.logging ?? NaN },
      production: value.production
        ? { version: value.production.version, estimate: value.production.estimate ?? NaN, difference: { estimate: value.production.difference.estimate ?? NaN, ci_low: value.production.difference.ci_low ?? NaN, ci_high: value.production.difference.ci_high ?? NaN } }
        : null,
    },
    options.thresholds,
  );
  for (const g of gates.results) log(`gate ${g.gate}: ${g.passed ? 'passed' : 'FAILED'}: ${g.reason}`);

  const chosen = `${describeHeads(fit.heads)}${served.distillation.served === 'student' ? `, distilled into an MLP ${JSON.stringify(served.distillation.student!.hidden)}` : ''}`;
  const bytes = exportGraph(D, K, { name: spec.name, producerVersion: options.codeVersion, metadata: { family: chosen, output: 'acceptance' } }, (g, x) => served.model.emit(g, x, 'model'));
  const verifyRows = Uint32Array.from([...test, ...spec.splits.train.subarray(0, VERIFY_TRAINING_ROWS)]);
  const Xverify = float32Rows(data.X, verifyRows, D);
  const exportCheck = await verifyExport(bytes, Xverify, verifyRows.length, D, served.model.probabilities(Xverify, verifyRows.length));
  log(`export verified: onnxruntime matches the trainer within ${exportCheck.maxAbsDiff.toExponential(2)} on ${exportCheck.rows} rows`);
  const prepared = await prepareModel(bytes, data.columns.map((c) => c.name), { classes: data.offers, kind: 'multilabel', probabilityOutput: OUTPUT_NAME });

  const explanation = trainedExplanation(data.X, data.columns.length, spec.splits.train, options.seed, 'coalitions');
  const importance = await holdoutImportance(bytes, data.X, data.columns.map((c) => c.name), spec.splits.test, explanation, options.seed, log);

  const plan = timePlan(data.months, spec.splits.train, 'month');
  const refusal = gates.results.filter((g) => !g.passed).map((g) => g.reason);
  const tops = new Array<number>(K).fill(0);
  for (const k of policy) tops[k]!++;
  const draft: ManifestDraft = {
    status: refusal.length ? 'refused' : 'ready',
    refusal_reasons: refusal,
    model: { producer: prepared.producer, opsets: prepared.opsets, rewrites: [] },
    input: { ...prepared.input, preprocessing: { applied_in: 'graph', steps: served.model.preprocessing } },
    output: prepared.output,
    lineage: {
      origin: 'trained',
      data_source: spec.lineage.data_source,
      rows: data.rows,
      time_window: spec.lineage.time_window,
      data_fingerprint: null,
      seed: options.seed,
      family: chosen,
      hyperparameters: { ...served.model.hyperparameters, split: spec.splits.description, selection: fit.description, logging_policy: logging.description },
      code_version: options.codeVersion,
      notes: spec.lineage.notes,
    },
    metrics: {
      holdout,
      baseline_prior: baseline,
      production: productionMetrics,
      validation: Object.fromEntries(fit.heads.map((h) => [h.offer_id, { name: 'log_loss', value: h.log_loss }])),
      chosen_family: chosen,
      export_max_abs_diff: exportCheck.maxAbsDiff,
      cross_validation: {
        kind: 'time',
        description: `per offer, ${plan.description}`,
        folds: plan.folds.map((f) => ({ label: f.label, fit_rows: f.fit.length, check_rows: f.check.length })),
        out_of_fold: oofMetrics,
        out_of_fold_baseline: oofBaseline,
        candidates: fit.heads.map((h) => ({ family: `${h.offer_id}: ${h.family ?? 'constant'}`, score: h.log_loss === null ? null : -h.log_loss, settings: h.settings, tried: h.candidates.map((c) => ({ settings: { family: c.family }, score: -c.score })), seconds: h.seconds })),
        refit: { rows: spec.splits.train.length, family: chosen },
      },
      output_kind: 'acceptance',
      heads: fit.heads,
      distillation: served.distillation,
      per_offer: perOffer,
      policy_value: value,
      overlap,
      warnings,
    },
    holdout_fingerprint: {
      rows: test.length,
      ...scoreFingerprint(Float64Array.from(policy, (k, i) => Q[i * K + k]!)),
      top_class_share: Object.fromEntries(data.offers.map((id, k) => [id, tops[k]! / Math.max(1, test.length)])),
    },
    gates,
    explanation: { ...explanation, importance },
    feature_profile: featureProfile(data.X, data.columns.map((c) => c.name), `${spec.splits.train.length} training rows (offers sent)`, spec.splits.train),
  };
  return { bytes: prepared.bytes, draft, heads: fit.heads, chosen, exportCheck, warnings, policy: value, overlap, windowPolicy: policy };
}

/**
 * The model to serve: the heads distilled into one network when it answers like them on the
 * evaluation window's customers (their features only: no outcome decides it), else the heads.
 */
function serveable(
  heads: FittedAcceptance,
  spec: NboTrainingSpec,
  Xwindow: Float64Array,
  options: NboTrainingOptions,
  log: (m: string) => void,
): { model: FittedAcceptance; distillation: Distillation } {
  const K = spec.data.offers.length;
  if (!options.student || K <= 2) return { model: heads, distillation: { served: 'heads', student: null, reason: options.student ? 'two offers or fewer: nothing to distil' : 'distillation is off' } };
  const { student: settings } = options;
  const distilled = distillAcceptance(heads, spec.data, spec.splits.train, { ...settings, seed: options.seed });
  const rows = Xwindow.length / spec.data.columns.length;
  const agreement = fidelity(heads.probabilities(Xwindow, rows), distilled.model.probabilities(Xwindow, rows), K);
  const faithful = agreement.mean_abs_diff <= settings.maxMeanAbsDiff && agreement.same_top_offer >= settings.minSameTopOffer;
  const student = { ...distilled.report, mean_abs_diff: round(agreement.mean_abs_diff)!, same_top_offer: round(agreement.same_top_offer)! };
  log(`distilled the heads into an MLP ${JSON.stringify(settings.hidden)} in ${distilled.report.seconds.toFixed(1)}s: on the window's customers it differs from them by ${student.mean_abs_diff} on average and sends the same top offer to ${(student.same_top_offer * 100).toFixed(1)}%; serving ${faithful ? 'the network' : 'the heads'}`);
  return faithful
    ? { model: distilled.model, distillation: { served: 'student', student, reason: null } }
    : {
        model: heads,
        distillation: { served: 'heads', student, reason: `the network answers unlike the heads (mean |difference| ${student.mean_abs_diff}, limit ${settings.maxMeanAbsDiff}; same top offer ${student.same_top_offer}, at least ${settings.minSameTopOffer})` },
      };
}

/** What was distilled and which model is served (the manifest's `metrics.distillation`). */
export interface Distillation {
  served: 'student' | 'heads';
  student: { hidden: number[]; epochs: number; rows: number; seconds: number; mean_abs_diff: number; same_top_offer: number } | null;
  reason: string | null;
}

/**
 * Per row, P(the logging policy sent the offer it sent): the logged column where the warehouse has
 * it; otherwise the cross-fitted estimate (then `all` holds every offer's estimated propensity).
 */
export function loggingPropensities(spec: NboTrainingSpec, seed: number, log: (m: string) => void): { sent: Float64Array; all: Float64Array | null; source: 'logged' | 'estimated'; description: string } {
  const { data } = spec;
  if (spec.propensity) {
    log('logging policy: logged propensities');
    return { sent: spec.propensity, all: null, source: 'logged', description: 'logged by the programme (the propensity column)' };
  }
  log(`logging policy: no logged propensities (${spec.propensityNote}); estimating it from the history`);
  const months = [...new Set(data.months)].sort();
  const index = new Map(months.map((m, i) => [m, i]));
  const K = data.offers.length;
  const estimate = estimateLoggingPolicy(data.X, data.columns.length, data.action, K, data.months.map((m) => index.get(m)!), spec.customerIds, { seed, log });
  const sent = Float64Array.from(data.action, (a, i) => Math.max(PROPENSITY_FLOOR, estimate.P[i * K + a]!));
  if (estimate.floored) log(`logging policy: ${estimate.floored} rows' propensities raised to the floor ${PROPENSITY_FLOOR}`);
  return { sent, all: estimate.P, source: 'estimated', description: estimate.description };
}

/** The IPS, SNIPS and DR estimates of a policy on the window, beside the logging policy and production, as the manifest keeps them. */
export function policyValueReport(
  logged: LoggedOffers,
  q: Float64Array | null,
  policy: Int32Array,
  meta: { window: { from: string; to: string }; propensity: 'logged' | 'estimated'; rewardModel: string; all: Float64Array | null; production: { version: number; policy: Int32Array } | null },
): PolicyValue {
  const e = estimatePolicyValue(logged, policy, q);
  let observed = 0;
  for (let i = 0; i < logged.reward.length; i++) observed += logged.reward[i]!;
  const main = e.dr ?? e.snips ?? e.ips;
  let production: PolicyValue['production'] = null;
  if (meta.production && q) {
    const p = estimatePolicyValue(logged, meta.production.policy, q);
    const difference = pairedDifference(logged, meta.production.policy, policy, q);
    production = { version: meta.production.version, estimate: round(p.dr!.estimate), ci_low: round(p.dr!.ci_low), ci_high: round(p.dr!.ci_high), difference: roundEstimate(difference) };
  }
  let low: number | null = null;
  if (meta.all) {
    let n = 0;
    for (let i = 0; i < meta.all.length; i++) if (meta.all[i]! < 0.01) n++;
    low = round(n / Math.max(1, meta.all.length));
  }
  return {
    estimate: round(main.estimate),
    ci_low: round(main.ci_low),
    ci_high: round(main.ci_high),
    method: e.dr ? 'doubly robust' : 'self-normalised IPS',
    logging: round(observed / Math.max(1, logged.reward.length)),
    rows: e.rows,
    from: meta.window.from,
    to: meta.window.to,
    dr: e.dr && roundEstimate(e.dr),
    ips: roundEstimate(e.ips),
    snips: e.snips && roundEstimate(e.snips),
    matched: e.matched,
    effective_rows: Math.round(e.effective_rows),
    propensity: meta.propensity,
    reward_model: meta.rewardModel,
    low_support_share: low,
    production,
  };
}

/** A policy value in one line, as `train` prints it. */
export function describePolicyValue(v: PolicyValue): string {
  const production = v.production ? `; production v${v.production.version} ${v.production.estimate} (difference ${(v.production.difference.estimate ?? 0) >= 0 ? '+' : ''}${v.production.difference.estimate}, ${v.production.difference.ci_low} to ${v.production.difference.ci_high})` : '';
  return `estimated acceptance of the top offer ${v.estimate} (95% interval ${v.ci_low}-${v.ci_high}, ${v.method}; IPS ${v.ips.estimate}, SNIPS ${v.snips?.estimate ?? '-'}) against ${v.logging} for the offers actually sent${production}`;
}

/**
 * A version's scores on rows, and the policy of its top offer in the catalog's offer order. An
 * acceptance model's scores are P(accept) and can serve as a reward model; a softmax model's rank
 * offers but are not acceptance probabilities.
 */
export async function policyOf(
  model: ComparedModel,
  X: Float64Array,
  rows: number,
  features: string[],
  offers: string[],
): Promise<{ policy: Int32Array; scores: Float64Array; acceptance: Float64Array | null; reason: string | null } | { policy: null; scores: null; acceptance: null; reason: string }> {
  const classes = model.manifest.output.classes;
  if (classes.length !== offers.length || !offers.every((o) => classes.includes(o))) return { policy: null, scores: null, acceptance: null, reason: `v${model.version} predicts other offers (${classes.join(', ')})` };
  const runner = await ModelRunner.create(model.manifest, model.bytes);
  try {
    const lacking = runner.rawColumns.filter((c) => !features.includes(c));
    if (lacking.length) return { policy: null, scores: null, acceptance: null, reason: `v${model.version} needs columns the history lacks: ${lacking.join(', ')}` };
    const raw = await runner.predictMatrix(X, rows, features);
    const K = offers.length;
    const order = offers.map((o) => classes.indexOf(o));
    const P = new Float64Array(rows * K);
    for (let i = 0; i < rows; i++) for (let k = 0; k < K; k++) P[i * K + k] = raw[i * K + order[k]!]!;
    const acceptance = model.manifest.output.kind === 'multilabel';
    return { policy: argmaxPolicy(P, K), scores: P, acceptance: acceptance ? P : null, reason: acceptance ? null : `v${model.version} is a softmax over accepted offers, not acceptance probabilities: compared by policy value only` };
  } finally {
    await runner.release();
  }
}

function describeHeads(heads: HeadReport[]): string {
  const counts = new Map<string, number>();
  for (const h of heads) counts.set(h.family ?? 'constant', (counts.get(h.family ?? 'constant') ?? 0) + 1);
  return `acceptance heads (${[...counts.entries()].map(([f, n]) => (counts.size === 1 ? f : `${f} x${n}`)).join(', ')})`;
}

export function acceptanceRates(action: Int32Array, accepted: Int32Array, rows: Uint32Array, K: number): number[] {
  const sent = new Array<number>(K).fill(0);
  const yes = new Array<number>(K).fill(0);
  let all = 0;
  for (const r of rows) {
    sent[action[r]!]!++;
    yes[action[r]!]! += accepted[r]!;
    all += accepted[r]!;
  }
  const overall = rows.length ? all / rows.length : 0.5;
  return sent.map((n, k) => (yes[k]! + overall) / (n + 1));
}


/** Four decimals; JSON has no NaN, so an undefined figure (one row, no variance) is null. */
function round(v: number): number | null {
  return Number.isFinite(v) ? Math.round(v * 1e4) / 1e4 : null;
}

function roundEstimate(e: Estimate): NullableEstimate {
  return { estimate: round(e.estimate), ci_low: round(e.ci_low), ci_high: round(e.ci_high), se: Number.isFinite(e.se) ? Math.round(e.se * 1e6) / 1e6 : null };
}

type NullableEstimate = { [K in keyof Estimate]: number | null };
