import { IntegrityError } from '../errors';
import type { ModelManifest } from '../registry/manifest';
import { encodeRecords, toNumber, type ColumnEncoding } from './encoding';
import { createSession, makeTensor, ort, type InferenceSession } from './session';

/**
 * Runs one registry version: turns raw rows into the model's input tensors as its manifest says
 * (encoding, feature order, one tensor or one per feature), runs them in one onnxruntime call, and
 * returns a probability matrix [rows][classes] in the manifest's class order.
 */
export class ModelRunner {
  /** Set when the model takes all features as one numeric [N, features] tensor in feature order. */
  private readonly direct: { name: string; type: 'float32' | 'float64'; rank: number } | null;

  private constructor(
    readonly manifest: ModelManifest,
    private readonly session: InferenceSession,
    private readonly encodings: ColumnEncoding[] | null,
  ) {
    const tensors = manifest.input.tensors;
    const t = tensors[0]!;
    const inOrder = manifest.input.features.every((f, j) => f.column === j && f.tensor === t.name);
    this.direct = tensors.length === 1 && inOrder && (t.type === 'float32' || t.type === 'float64') ? { name: t.name, type: t.type, rank: t.shape.length } : null;
  }

  static async create(manifest: ModelManifest, bytes: Uint8Array, options: { threads?: number } = {}): Promise<ModelRunner> {
    const session = await createSession(bytes, options);
    const encodeStep = manifest.input.preprocessing.steps.find((s) => s.step === 'encode');
    return new ModelRunner(manifest, session, encodeStep ? (encodeStep.columns as ColumnEncoding[]) : null);
  }

  /** Number of classes, i.e. the width of every probability row. */
  get width(): number {
    return this.manifest.output.classes.length;
  }

  /** True when some input is text the graph reads itself (no numeric matrix can feed the model). */
  get takesText(): boolean {
    return !this.encodings && this.manifest.input.features.some((f) => f.type === 'string');
  }

  /** The raw columns a record must carry (before encoding). */
  get rawColumns(): string[] {
    return this.encodings ? this.encodings.map((e) => e.column) : this.manifest.input.features.map((f) => f.name);
  }

  /** The raw columns read as numbers (anything else in them is taken as missing). */
  get numericColumns(): string[] {
    if (this.encodings) return this.encodings.filter((e) => e.kind === 'numeric').map((e) => e.column);
    return this.manifest.input.features.filter((f) => f.type !== 'string').map((f) => f.name);
  }

  /** Probabilities for raw records keyed by raw column name. */
  async predictRecords(records: Record<string, unknown>[]): Promise<Float64Array> {
    const X = this.recordsMatrix(records);
    if (X) return this.predictEncoded(X, records.length);
    return this.run(this.feeds((f, r) => records[r]![f], records.length), records.length);
  }

  /**
   * Raw records as the numeric matrix the model takes (its feature order, encodings applied, NaN
   * for missing); null when the model has text inputs.
   */
  recordsMatrix(records: ArrayLike<Record<string, unknown>>): Float64Array | null {
    if (this.encodings) return encodeRecords(this.encodings, records);
    if (this.takesText) return null;
    const features = this.manifest.input.features;
    const X = new Float64Array(records.length * features.length);
    for (let r = 0; r < records.length; r++) {
      for (let j = 0; j < features.length; j++) X[r * features.length + j] = toNumber(records[r]![features[j]!.name]);
    }
    return X;
  }

  /**
   * Probabilities for a row-major matrix whose columns are named by `columns` (NaN = missing): the
   * one path the scoring service, segment workers and benchmarks take. Passed through when the
   * model's features are exactly these columns, reordered when they are some of them in another
   * order; only a model with encodings or text inputs goes through records.
   */
  async predictMatrix(X: Float64Array, rows: number, columns: readonly string[]): Promise<Float64Array> {
    const order = this.featureOrder(columns);
    if (order === null) {
      const width = columns.length;
      const records = Array.from({ length: rows }, (_, r) => Object.fromEntries(columns.map((c, j) => [c, Number.isNaN(X[r * width + j]!) ? null : X[r * width + j]])));
      return this.predictRecords(records);
    }
    return this.predictEncoded(this.toFeatureOrder(X, rows, columns, order), rows);
  }

  /**
   * For each of the model's features, its column among `columns` (-1: absent, taken as missing);
   * null when the model needs encodings or text and cannot take a numeric matrix.
   */
  featureOrder(columns: readonly string[]): Int32Array | null {
    if (this.encodings || this.takesText) return null;
    return Int32Array.from(this.manifest.input.features, (f) => columns.indexOf(f.name));
  }

  /** X (columns named by `columns`) in the model's feature order; X itself when it already is. */
  toFeatureOrder(X: Float64Array, rows: number, columns: readonly string[], order: Int32Array): Float64Array {
    const cols = order.length;
    if (cols === columns.length && order.every((c, j) => c === j)) return X;
    const width = columns.length;
    const out = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) out[r * cols + j] = order[j]! >= 0 ? X[r * width + order[j]!]! : NaN;
    return out;
  }

  /** Probabilities for rows already in feature order (row-major, NaN for missing). */
  async predictEncoded(X: Float64Array, rows: number): Promise<Float64Array> {
    const cols = this.manifest.input.features.length;
    if (X.length !== rows * cols) throw new RangeError(`expected ${rows} x ${cols} values, got ${X.length}`);
    const t = this.direct;
    if (t) {
      const dims = t.rank >= 2 ? [rows, cols] : [rows];
      const tensor = t.type === 'float32' ? new ort.Tensor('float32', Float32Array.from(X), dims) : new ort.Tensor('float64', X, dims);
      return this.run({ [t.name]: tensor }, rows);
    }
    const names = this.manifest.input.features.map((f) => f.name);
    const index = new Map(names.map((n, i) => [n, i]));
    return this.run(this.feeds((f, r) => X[r * cols + index.get(f)!]!, rows), rows);
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  private feeds(value: (feature: string, row: number) => unknown, rows: number): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const tensor of this.manifest.input.tensors) {
      const features = this.manifest.input.features.filter((f) => f.tensor === tensor.name).sort((a, b) => a.column - b.column);
      const width = features.length;
      const values: (number | string)[] = new Array(rows * width);
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < width; j++) {
          const v = value(features[j]!.name, r);
          values[r * width + j] = tensor.type === 'string' ? (v === null || v === undefined ? '' : String(v)) : toNumber(v);
        }
      }
      feeds[tensor.name] = makeTensor(tensor.type, values, tensor.shape.length >= 2 ? [rows, width] : [rows]);
    }
    return feeds;
  }

  private async run(feeds: Record<string, ort.Tensor>, rows: number): Promise<Float64Array> {
    const out = this.manifest.output;
    const result = (await this.session.run(feeds, [out.probability_tensor]))[out.probability_tensor];
    if (!result) throw new IntegrityError(`Model ${this.manifest.name} v${this.manifest.version} returned no "${out.probability_tensor}"`);
    const data = result.data as Float32Array | Float64Array;
    const k = this.width;
    const probs = new Float64Array(rows * k);
    if (out.probability_layout === 'matrix') {
      probs.set(data);
    } else {
      const positive = out.classes.indexOf(out.positive_class!);
      for (let r = 0; r < rows; r++) {
        probs[r * 2 + positive] = data[r]!;
        probs[r * 2 + (1 - positive)] = 1 - data[r]!;
      }
    }
    return probs;
  }
}
