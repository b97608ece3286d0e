import type { OnnxGraphBuilder } from '../onnx/writer';
import { describeDesign, designWidth, fitDesign } from './design';
import { emitNet, emitTrees, netProbabilities, toFloat32, type NetModel } from './export';
import { initNet, train as trainNet } from './nn';
import { sampleRows } from './families/linear';
import { selectModel } from './families/index';
import type { GbtParams } from './gbt';
import type { InputColumn } from './design';
import { coveredRows, timePlan, type Candidate, type Family, type FittedModel, type SelectionData } from './selection';

/**
 * Next best offer as acceptance: for each offer of the catalog, the probability that the customer
 * accepts it if it is sent, P(accept | x, offer k). One binary model (a head) per offer, learnt from
 * every time that offer was made, accepted or refused, with its family and settings chosen by
 * time-ordered cross-validation on log loss (the heads' probabilities are compared with each other
 * to rank offers, so they must be calibrated, not only ordered). The heads are served as one graph
 * whose output holds the K independent probabilities; they do not sum to 1.
 *
 * Why heads and not one model of (customer, offer) or a softmax over accepted offers: measured on
 * the demo programme (targeted and uniform logging, 50,000 customers, true acceptance known), the
 * policy "send the offer with the highest head" reached 0.506 and 0.508 of the best possible 0.512,
 * where one LightGBM model with the offer as a categorical input reached 0.494 and 0.506 and
 * LightGBM heads with default settings 0.480 and 0.492; weighting each head's rows by 1 / propensity
 * lowered LightGBM's to 0.467 and ours from 0.499 to 0.485 (README, "How next best offer is learnt").
 *
 * Eight tree ensembles cost onnxruntime about 10 µs per customer (some 600 trees), so the heads are
 * then distilled (`distillAcceptance`) into one small network with a sigmoid per offer, trained on
 * the heads' probabilities for every offered customer of the training months: it reached 0.508 and
 * 0.509 on the same programmes and serves at MLP speed.
 */

/** What the trainer learns offers from: every offer made, as columns over the same rows. */
export interface OfferRows {
  /** Offer ids in output order (the catalog's). */
  offers: string[];
  columns: InputColumn[];
  /** Row-major [rows][columns] features when the offer was made (NaN = missing). */
  X: Float64Array;
  rows: number;
  /** Index into `offers` of the offer made. */
  action: Int32Array;
  /** 1 when it was accepted. */
  accepted: Int32Array;
  /** Calendar month (YYYY-MM) of each row: cross-validation folds follow time. */
  months: string[];
}

/** How one offer's acceptance is modelled. */
export interface HeadReport {
  offer_id: string;
  /** Training rows where this offer was made, and how many accepted. */
  sent: number;
  accepted: number;
  /** `model`: a fitted binary model; `constant`: the offer's smoothed acceptance rate (too little to learn from). */
  kind: 'model' | 'constant';
  family: string | null;
  /** Out-of-fold log loss of the head on its own rows (null for constants). */
  log_loss: number | null;
  settings: Record<string, unknown>;
  /** Why a constant stands in for a model. */
  reason: string | null;
  candidates: { family: string; score: number; seconds: number }[];
  seconds: number;
}

/** The heads refit on all training rows, as one model: probabilities rows x offers. */
export interface FittedAcceptance {
  probabilities(X: Float64Array, rows: number): Float64Array;
  /** Writes every head into the graph; returns the [N, offers] probabilities. */
  emit(g: OnnxGraphBuilder, x: string, prefix: string): string;
  preprocessing: Record<string, unknown>[];
  hyperparameters: Record<string, unknown>;
}

export interface AcceptanceFit {
  heads: HeadReport[];
  model: FittedAcceptance;
  /** Per row of the data: the out-of-fold acceptance probability of the offer made (NaN where no fold predicted it). */
  oof: Float64Array;
  /** Plain-language problems with particular offers (too few sends, never accepted, …). */
  warnings: string[];
  description: string;
}

export interface AcceptanceOptions {
  families: Family[];
  gbt?: Partial<GbtParams>;
  maxEpochs?: number;
  seed: number;
  /** An offer made fewer times than this in the training rows gets a constant. */
  minSends: number;
  /** An offer accepted (or refused) fewer times than this gets a constant. */
  minOutcomes: number;
  log: (message: string) => void;
}

/** Prior sends of the smoothing towards the overall acceptance rate for constant heads. */
const CONSTANT_SMOOTHING = 1;

/** Fits one head per offer on the training rows `train` (indices into the data). */
export function fitAcceptance(data: OfferRows, train: Uint32Array, options: AcceptanceOptions): AcceptanceFit {
  const K = data.offers.length;
  const oof = new Float64Array(data.rows).fill(NaN);
  const warnings: string[] = [];
  const heads: HeadReport[] = [];
  const fitted: ({ kind: 'model'; model: FittedModel } | { kind: 'constant'; p: number })[] = [];
  let allAccepted = 0;
  for (const r of train) allAccepted += data.accepted[r]!;
  const overall = train.length ? allAccepted / train.length : 0.5;
  for (let k = 0; k < K; k++) {
    const started = Date.now();
    const offer = data.offers[k]!;
    const rows = Uint32Array.from(Array.from(train).filter((r) => data.action[r] === k));
    let accepted = 0;
    for (const r of rows) accepted += data.accepted[r]!;
    const constant = (reason: string) => {
      const p = (accepted + CONSTANT_SMOOTHING * overall) / (rows.length + CONSTANT_SMOOTHING);
      warnings.push(`offer ${offer}: ${reason}; its acceptance is the constant ${p.toFixed(4)} for every customer, and the other offers are ranked by their models`);
      fitted.push({ kind: 'constant', p });
      heads.push({ offer_id: offer, sent: rows.length, accepted, kind: 'constant', family: null, log_loss: null, settings: { probability: p }, reason, candidates: [], seconds: (Date.now() - started) / 1000 });
      options.log(`offer ${offer}: constant ${p.toFixed(4)} (${reason})`);
    };
    if (rows.length === 0) {
      constant('never made in the training months');
      continue;
    }
    if (rows.length < options.minSends) {
      constant(`made only ${rows.length} times in the training months (at least ${options.minSends} are needed to learn from)`);
      continue;
    }
    if (accepted < options.minOutcomes || rows.length - accepted < options.minOutcomes) {
      const which = accepted < options.minOutcomes ? (accepted === 0 ? 'never accepted' : `accepted only ${accepted} times`) : accepted === rows.length ? 'always accepted' : `refused only ${rows.length - accepted} times`;
      constant(`${which} in ${rows.length} sends (at least ${options.minOutcomes} of each outcome are needed)`);
      continue;
    }
    const plan = timePlan(data.months, rows, 'month');
    const unusable = plan.folds.length === 0 || plan.folds.some((f) => f.fit.length === 0 || f.check.length === 0 || !bothOutcomes(data.accepted, f.fit));
    if (unusable) {
      constant('its sends do not span enough months with both outcomes to cross-validate');
      continue;
    }
    const selection: SelectionData = {
      columns: data.columns,
      X: data.X,
      y: data.accepted,
      classes: ['0', '1'],
      train: rows,
      plan,
      seed: options.seed,
      log: (m) => options.log(`${offer}: ${m}`),
      score: 'log_loss',
    };
    const { chosen, candidates } = selectModel(selection, { families: options.families, gbt: options.gbt, maxEpochs: options.maxEpochs });
    for (const r of coveredRows(plan)) oof[r] = chosen.oof[r * 2 + 1]!;
    const model = chosen.refit();
    fitted.push({ kind: 'model', model });
    heads.push({
      offer_id: offer,
      sent: rows.length,
      accepted,
      kind: 'model',
      family: chosen.family,
      log_loss: -chosen.score,
      settings: chosen.settings,
      reason: null,
      candidates: candidates.map((c: Candidate) => ({ family: c.family, score: -c.score, seconds: c.seconds })),
      seconds: (Date.now() - started) / 1000,
    });
    options.log(`offer ${offer}: ${chosen.family} (out-of-fold log loss ${(-chosen.score).toFixed(4)} on ${rows.length} sends, ${accepted} accepted)`);
  }
  return {
    heads,
    model: assemble(fitted, data.offers, data.columns.length),
    oof,
    warnings,
    description: 'one binary acceptance model per offer, each learnt from every time that offer was made (accepted or refused), its family and settings chosen by time-ordered cross-validation on log loss',
  };
}

/** How the heads are distilled: the network's shape and its fixed training schedule (models/training.json `nbo.student`). */
export interface StudentOptions {
  hidden: number[];
  /** Offered customers it learns from at most (a seeded sample above). */
  maxRows: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  decay: { every: number; factor: number };
  seed: number;
}

export interface DistilledAcceptance {
  model: FittedAcceptance;
  report: { hidden: number[]; epochs: number; rows: number; seconds: number };
}

/**
 * One network (inputs -> hidden ReLU layers -> a sigmoid per offer) trained to give the heads'
 * probabilities of every offer for every offered customer of the training rows: soft targets for
 * all offers on every row, where each head only ever saw the rows of its own offer. The same
 * design as the MLP family (medians for missing values with indicators, log1p of skewed columns,
 * standardised), served as one small graph.
 */
export function distillAcceptance(teacher: FittedAcceptance, data: OfferRows, train: Uint32Array, options: StudentOptions): DistilledAcceptance {
  const started = Date.now();
  const K = data.offers.length;
  const D = data.columns.length;
  const rows = sampleRows(train, options.maxRows, options.seed);
  const X = new Float64Array(rows.length * D);
  rows.forEach((r, i) => X.set(data.X.subarray(r * D, (r + 1) * D), i * D));
  const targets = teacher.probabilities(X, rows.length);
  const categorical = Object.fromEntries(data.columns.filter((c) => c.kind === 'categorical').map((c) => [c.name, 'one_hot' as const]));
  const { design, Z } = fitDesign(data.columns, data.X, rows, data.accepted, { knots: 0, log: true, categorical }, options.seed);
  const width = designWidth(design);
  const net = initNet(width, options.hidden, K, options.seed);
  net.output = 'independent';
  trainNet(net, { X: Z, rows: rows.length, cols: width, y: new Int32Array(rows.length), targets }, null, {
    maxEpochs: options.epochs,
    batchSize: options.batchSize,
    learningRate: options.learningRate,
    l2: 0,
    decay: options.decay,
    patience: options.epochs,
    seed: options.seed,
  });
  const model: NetModel = toFloat32({ kind: 'net', design, net, classes: K });
  return {
    model: {
      probabilities: (Xr, rows) => netProbabilities(model, Xr, rows),
      emit: (g, x, prefix) => emitNet(g, x, model, prefix),
      preprocessing: [
        { step: 'acceptance_network', offers: data.offers, output: 'independent P(accept | x, offer) per offer (a sigmoid each); they do not sum to 1', distilled_from: 'the acceptance heads', hidden_layers: options.hidden, in_graph: true },
        ...describeDesign(design, data.columns).map((step) => ({ ...step, in_graph: true })),
      ],
      hyperparameters: { student: { hidden_layers: options.hidden, epochs: options.epochs, batch_size: options.batchSize, learning_rate: options.learningRate, decay: options.decay, rows: rows.length }, teacher: teacher.hyperparameters },
    },
    report: { hidden: options.hidden, epochs: options.epochs, rows: rows.length, seconds: (Date.now() - started) / 1000 },
  };
}

/** How closely a student answers like its teacher on rows: mean |difference| per offer, and how often both send the same offer. */
export function fidelity(teacher: Float64Array, student: Float64Array, offers: number): { mean_abs_diff: number; same_top_offer: number } {
  const rows = teacher.length / offers;
  let diff = 0;
  let same = 0;
  for (let i = 0; i < rows; i++) {
    let bt = 0;
    let bs = 0;
    for (let k = 0; k < offers; k++) {
      diff += Math.abs(teacher[i * offers + k]! - student[i * offers + k]!);
      if (teacher[i * offers + k]! > teacher[i * offers + bt]!) bt = k;
      if (student[i * offers + k]! > student[i * offers + bs]!) bs = k;
    }
    if (bt === bs) same++;
  }
  return { mean_abs_diff: diff / Math.max(1, rows * offers), same_top_offer: same / Math.max(1, rows) };
}

function bothOutcomes(accepted: Int32Array, rows: Uint32Array): boolean {
  let yes = 0;
  for (const r of rows) yes += accepted[r]!;
  return yes > 0 && yes < rows.length;
}

/**
 * The heads as one model. Boosted-trees heads (with no category remapping) fold into one tree
 * ensemble with a sigmoid per offer; any other mix is one sub-graph per head, each head's
 * P(accept) column concatenated in offer order, constants included.
 */
function assemble(heads: ({ kind: 'model'; model: FittedModel } | { kind: 'constant'; p: number })[], offers: string[], D: number): FittedAcceptance {
  const K = heads.length;
  const probabilities = (X: Float64Array, rows: number): Float64Array => {
    const out = new Float64Array(rows * K);
    heads.forEach((h, k) => {
      if (h.kind === 'constant') {
        const p = Math.fround(h.p);
        for (let i = 0; i < rows; i++) out[i * K + k] = p;
        return;
      }
      const P = h.model.probabilities(X, rows);
      for (let i = 0; i < rows; i++) out[i * K + k] = P[i * 2 + 1]!;
    });
    return out;
  };
  const trees = heads.map((h) => (h.kind === 'model' ? h.model.trees : null));
  const foldable = K > 2 && heads.every((h, k) => h.kind === 'constant' || trees[k] !== undefined);
  const emit = (g: OnnxGraphBuilder, x: string, prefix: string): string => {
    if (foldable) {
      const base = heads.map((h, k) => (h.kind === 'constant' ? logit(h.p) : trees[k]!.base[0]!));
      const all = heads.flatMap((h, k) => (h.kind === 'constant' ? [] : trees[k]!.trees.map((t) => ({ ...t, output: k }))));
      return emitTrees(g, x, { base, trees: all, transform: 'LOGISTIC' }, offers, `${prefix}_trees`);
    }
    const ints = (values: number[]) => BigInt64Array.from(values.map(BigInt));
    const [shape] = g.node('Shape', [x]);
    const [n] = g.node('Slice', [shape!, g.constant(`${prefix}_n_start`, [1], ints([0])), g.constant(`${prefix}_n_end`, [1], ints([1]))]);
    const [column] = g.node('Concat', [n!, g.constant(`${prefix}_one_column`, [1], ints([1]))], { attributes: { axis: { int: 0 } } });
    const parts = heads.map((h, k) => {
      if (h.kind === 'constant') return g.node('Expand', [g.constant(`${prefix}_head${k}_constant`, [1, 1], [h.p]), column!])[0]!;
      const P = h.model.emit(g, x, `${prefix}_head${k}`);
      return g.node('Slice', [P, g.constant(`${prefix}_head${k}_from`, [1], ints([1])), g.constant(`${prefix}_head${k}_to`, [1], ints([2])), g.constant(`${prefix}_head${k}_axis`, [1], ints([1]))])[0]!;
    });
    return g.node('Concat', parts, { attributes: { axis: { int: 1 } } })[0]!;
  };
  return {
    probabilities,
    emit,
    preprocessing: [
      { step: 'acceptance_heads', offers, output: 'independent P(accept | x, offer) per offer; they do not sum to 1', layout: foldable ? 'one tree ensemble, a sigmoid per offer' : 'one sub-graph per offer, concatenated', in_graph: true },
      ...heads.map((h, k) => ({ offer: offers[k], ...(h.kind === 'constant' ? { constant: h.p } : { family: h.model.family, steps: h.model.preprocessing }) })),
    ],
    hyperparameters: { heads: Object.fromEntries(heads.map((h, k) => [offers[k], h.kind === 'constant' ? { constant: h.p } : { family: h.model.family, ...h.model.hyperparameters }])), inputs: D },
  };
}

function logit(p: number): number {
  const q = Math.min(1 - 1e-7, Math.max(1e-7, p));
  return Math.log(q / (1 - q));
}
