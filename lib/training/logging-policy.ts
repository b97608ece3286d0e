import { Rng } from '../random';
import { DEFAULT_GBT, gbtProbabilities, trainGbt, type GbtParams } from './gbt';

/**
 * The logging policy estimated from the history itself, where the warehouse logs no propensities:
 * P(offer k was sent | the customer's features, the month), a multiclass boosted-trees model of the
 * offer sent. The month is an input because campaigns change: the estimate describes what was done
 * when, it forecasts nothing. Cross-fitted in two halves of the customers (each row's propensities
 * come from the model fit on the other half), so a propensity is never the model's memory of its
 * own row, which would shrink the importance weights of the very rows they correct.
 */
export interface LoggingPolicyEstimate {
  /** P(offer k | row i), rows x offers. */
  P: Float64Array;
  /** Rows whose estimated propensity of the sent offer was raised to the floor. */
  floored: number;
  floor: number;
  description: string;
}

/** Smallest propensity an importance weight divides by: beyond 1/floor a weight says more about the estimate than the data. */
export const PROPENSITY_FLOOR = 0.005;

const PARAMS: Partial<GbtParams> = { learningRate: 0.1, maxLeaves: 15, minSamplesLeaf: 40, maxRounds: 300, earlyStoppingRounds: 20, rowSubsample: 0.8, featureSubsample: 0.9 };

/**
 * Fits the logging policy on rows X (row-major, `cols` features, NaN = missing) with each row's
 * month index as one more input. `customers` keys the two halves (a customer's rows stay together).
 */
export function estimateLoggingPolicy(
  X: Float64Array,
  cols: number,
  action: ArrayLike<number>,
  offers: number,
  month: ArrayLike<number>,
  customers: readonly string[],
  options: { seed: number; log?: (message: string) => void },
): LoggingPolicyEstimate {
  const n = action.length;
  const D = cols + 1;
  const Z = new Float64Array(n * D);
  for (let i = 0; i < n; i++) {
    Z.set(X.subarray(i * cols, (i + 1) * cols), i * D);
    Z[i * D + cols] = month[i]!;
  }
  const half = Uint8Array.from(customers, (id) => hashHalf(id, options.seed));
  const P = new Float64Array(n * offers);
  const y = Int32Array.from(action);
  for (const side of [0, 1]) {
    const fit = [...half.keys()].filter((i) => half[i] !== side);
    const apply = [...half.keys()].filter((i) => half[i] === side);
    if (apply.length === 0) continue;
    // Early stopping on a seeded tenth of the fitting half.
    const rng = new Rng(options.seed ^ 0x2f6b1d);
    const check = fit.filter(() => rng.next() < 0.1);
    const checkSet = new Set(check);
    const learn = fit.filter((i) => !checkSet.has(i));
    const { model, report } = trainGbt(gather(Z, D, learn, y), check.length ? gather(Z, D, check, y) : null, offers, { ...DEFAULT_GBT, ...PARAMS, seed: options.seed });
    options.log?.(`logging policy: half ${side + 1} of the customers predicted by ${report.rounds} rounds fit on the other half (validation log loss ${report.bestValidationLoss.toFixed(4)})`);
    const Q = gbtProbabilities(model, gather(Z, D, apply, y).X, apply.length);
    apply.forEach((row, j) => P.set(Q.subarray(j * offers, (j + 1) * offers), row * offers));
  }
  let floored = 0;
  for (let i = 0; i < n; i++) if (P[i * offers + action[i]!]! < PROPENSITY_FLOOR) floored++;
  return {
    P,
    floored,
    floor: PROPENSITY_FLOOR,
    description: 'estimated from the history: boosted trees of the offer sent given the features and the month, cross-fitted over two halves of the customers',
  };
}

function gather(Z: Float64Array, D: number, rows: number[], y: Int32Array): { X: Float64Array; rows: number; cols: number; y: Int32Array } {
  const X = new Float64Array(rows.length * D);
  rows.forEach((r, i) => X.set(Z.subarray(r * D, (r + 1) * D), i * D));
  return { X, rows: rows.length, cols: D, y: Int32Array.from(rows, (r) => y[r]!) };
}

/** 0 or 1 from a customer id and seed (FNV-1a), the same on every run. */
function hashHalf(id: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0;
  return (h >>> 7) & 1;
}
