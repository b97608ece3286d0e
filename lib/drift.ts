import { z } from 'zod';

/**
 * Drift that means something: a segment's scores and inputs compared with the segment's own
 * earlier runs under the same model version (the first run after promotion, the previous run) and
 * its inputs with the customer base the version was trained on. Distributions are kept as fine,
 * mergeable histograms over fixed value bins (so chunk aggregates add up and any two runs compare);
 * a comparison groups the bins into about twenty groups of the reference's mass, then takes the
 * population stability index. Pure.
 */

/** A feature's values counted by fine bin key (see fineBin); "m" counts missing values. */
export type FineHistogram = Record<string, number>;

export const FineHistogramSchema = z.record(z.string(), z.number().int().nonnegative());

/** The PSI levels: below 0.1 stable, below 0.25 moderate, else major (the usual rule of thumb). */
export function driftLevel(psi: number): 'stable' | 'moderate' | 'major' {
  return psi < 0.1 ? 'stable' : psi < 0.25 ? 'moderate' : 'major';
}

/** Quarter octaves kept: |v| from 2^(K_MIN/4) to 2^((K_MAX+1)/4) (about 0.001 to 10^9); smaller and larger are clamped. */
const K_MIN = -40;
const K_MAX = 120;
const SPAN = K_MAX - K_MIN + 1;
/** Dense bin indices: 0 missing, 1 zero, then positive and negative quarter octaves. */
const BINS = 2 + 2 * SPAN;
const KEYS = Array.from({ length: BINS }, (_, b) => (b === 0 ? 'm' : b === 1 ? '0' : `${b < 2 + SPAN ? '+' : '-'}${((b - 2) % SPAN) + K_MIN}`));
/** The mantissa's top 20 bits at 2^0.25, 2^0.5 and 2^0.75: where a binary octave's quarters begin. */
const QUARTERS = [0.25, 0.5, 0.75].map((q) => Math.ceil((2 ** q - 1) * 2 ** 20));
const scratch = new Float64Array(1);
const scratchWords = new Uint32Array(scratch.buffer);
// The high word of a double is the second 32-bit word on little-endian machines (x86, ARM Lambda).
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('drift histograms read doubles as little-endian words');

/** The dense bin of a value given the high 32 bits of its double (sign, exponent, top of the mantissa). */
function binOfHighWord(hi: number): number {
  const exponent = ((hi >>> 20) & 0x7ff) - 1023;
  const top = hi & 0xfffff;
  const quarter = top >= QUARTERS[2]! ? 3 : top >= QUARTERS[1]! ? 2 : top >= QUARTERS[0]! ? 1 : 0;
  const k = Math.max(K_MIN, Math.min(K_MAX, 4 * exponent + quarter));
  return 2 + (hi >>> 31 ? SPAN : 0) + k - K_MIN;
}

/**
 * The fine bin of a value: "m" missing, "0" zero, otherwise the sign and a quarter of a binary
 * order of magnitude (|v| in [2^(k/4), 2^((k+1)/4)), read from the double's exponent and mantissa),
 * clamped to about 0.001 .. 10^9: about 19% wide, fine enough that deciles of any feature fall on
 * different bins, and the same for every run.
 */
export function fineBin(v: number): string {
  if (Number.isNaN(v)) return 'm';
  if (v === 0) return '0';
  scratch[0] = v;
  return KEYS[binOfHighWord(scratchWords[1]!)]!;
}

/** Where a fine bin lies on the number line (missing first), to order bins by value. */
function position(key: string): number {
  if (key === 'm') return -Infinity;
  if (key === '0') return 0;
  const k = Number(key.slice(1));
  const magnitude = 200 + k; // positive, increasing with |v|
  return key[0] === '-' ? -magnitude : magnitude;
}

/**
 * Adds every column of a row-major matrix (NaN missing) into per-feature histograms. On the
 * segment worker's path: values are counted into dense integer bins read from the doubles' bits,
 * and only the bins that occur become keys. `only` counts those rows alone.
 */
export function addToHistograms(histograms: FineHistogram[], X: Float64Array, rows: number, width: number, only?: ArrayLike<number>): void {
  const counts = new Uint32Array(width * BINS);
  const words = new Uint32Array(X.buffer, X.byteOffset, X.length * 2);
  const n = only ? only.length : rows;
  for (let i = 0; i < n; i++) {
    const base = (only ? only[i]! : i) * width;
    for (let j = 0; j < width; j++) {
      const v = X[base + j]!;
      const b = v !== v ? 0 : v === 0 ? 1 : binOfHighWord(words[(base + j) * 2 + 1]!);
      counts[j * BINS + b]!++;
    }
  }
  for (let j = 0; j < width; j++) {
    const h = (histograms[j] ??= {});
    for (let b = 0; b < BINS; b++) {
      const c = counts[j * BINS + b]!;
      if (c) h[KEYS[b]!] = (h[KEYS[b]!] ?? 0) + c;
    }
  }
}

/** Adds b's counts into a. */
export function mergeHistograms(a: FineHistogram[], b: FineHistogram[]): void {
  b.forEach((h, j) => {
    const t = (a[j] ??= {});
    for (const [key, c] of Object.entries(h)) t[key] = (t[key] ?? 0) + c;
  });
}

/**
 * PSI between two fine histograms: the bins are grouped in value order into groups holding at
 * least a twentieth of the reference's values; missing values, and values below or above the
 * reference's range, are groups of their own; shares are floored at 1e-4.
 * 0 when either side is empty.
 */
export function histogramPsi(actual: FineHistogram, reference: FineHistogram): number {
  const total = (h: FineHistogram) => Object.values(h).reduce((s, c) => s + c, 0);
  if (total(actual) === 0 || total(reference) === 0) return 0;
  const keys = [...new Set([...Object.keys(actual), ...Object.keys(reference)])].filter((k) => k !== 'm').sort((a, b) => position(a) - position(b));
  // Values beyond the reference's range, below and above, are groups of their own: the reference
  // has none there, which is what a shift looks like first.
  const inRange = keys.filter((k) => (reference[k] ?? 0) > 0);
  const low = inRange.length ? position(inRange[0]!) : 0;
  const high = inRange.length ? position(inRange[inRange.length - 1]!) : 0;
  const below = { a: 0, r: 0 };
  const above = { a: 0, r: 0 };
  const valued = total(reference) - (reference.m ?? 0);
  const groups: { a: number; r: number }[] = [];
  let current = { a: 0, r: 0 };
  for (const key of keys) {
    const at = position(key);
    if (at < low || at > high) {
      (at < low ? below : above).a += actual[key] ?? 0;
      continue;
    }
    current.a += actual[key] ?? 0;
    current.r += reference[key] ?? 0;
    if (current.r >= valued / GROUPS) {
      groups.push(current);
      current = { a: 0, r: 0 };
    }
  }
  // What is left after the last full group belongs to it (or is the only group).
  if (current.a || current.r) {
    const last = groups[groups.length - 1];
    if (last) {
      last.a += current.a;
      last.r += current.r;
    } else groups.push(current);
  }
  groups.push(below, above, { a: actual.m ?? 0, r: reference.m ?? 0 });
  return countsPsi(
    groups.map((g) => g.a),
    groups.map((g) => g.r),
  );
}

/** Groups a comparison uses: each holds at least 1/GROUPS of the reference's values. */
const GROUPS = 20;

/** Population stability index between two count vectors over the same bins (shares floored at 1e-4). */
export function countsPsi(actual: readonly number[], expected: readonly number[]): number {
  const total = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) || 1;
  const ta = total(actual);
  const te = total(expected);
  let value = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = Math.max(actual[i]! / ta, 1e-4);
    const e = Math.max(expected[i]! / te, 1e-4);
    value += (a - e) * Math.log(a / e);
  }
  return value;
}

/** A population's inputs as fine histograms per feature: what a version was trained on, or a run scored. */
export const FeatureProfileSchema = z.object({
  source: z.string().describe('whose inputs: the customer base when the version was trained, or its training rows'),
  customers: z.number().int().nonnegative(),
  features: z.array(z.string()),
  histograms: z.array(FineHistogramSchema).describe('per feature, counts by fine bin: "m" missing, "0" zero, "+k"/"-k" for |v| in [2^(k/4), 2^((k+1)/4))'),
});
export type FeatureProfile = z.infer<typeof FeatureProfileSchema>;

/** What a version was trained for: the whole base and each segment of the warehouse, as they stood. */
export const TrainingProfileSchema = FeatureProfileSchema.extend({
  segments: z.record(z.string(), FeatureProfileSchema).optional().describe('per segment of the warehouse at training, its members\' inputs (a segment created later has none)'),
});
export type TrainingProfile = z.infer<typeof TrainingProfileSchema>;

/** The profile of rows of a row-major matrix (NaN missing), `rows` of them when given (all rows otherwise). */
export function featureProfile(X: Float64Array, features: readonly string[], source: string, rows?: ArrayLike<number>): FeatureProfile {
  const d = features.length;
  const histograms: FineHistogram[] = features.map(() => ({}));
  addToHistograms(histograms, X, X.length / d, d, rows);
  return { source, customers: rows ? rows.length : X.length / d, features: [...features], histograms };
}
