/**
 * Regularised logistic (binary) and softmax (multiclass) regression on a dense design matrix,
 * fitted to convergence with L-BFGS over the whole training set: minimises the weighted mean
 * cross-entropy plus (l2 / 2) * |W|^2 (the intercepts are not penalised). Deterministic: no
 * sampling, so the same data and penalty always give the same weights.
 */
export interface LinearFit {
  /** Row-major [width][outputs]. */
  W: Float64Array;
  b: Float64Array;
  outputs: number;
  iterations: number;
  converged: boolean;
}

export interface LinearData {
  Z: Float64Array;
  rows: number;
  width: number;
  /** Class index per row (0/1 for binary). */
  y: Int32Array;
  weights?: Float64Array;
}

const HISTORY = 10;

/**
 * Fits the model. `tolerance` is the relative loss decrease per iteration below which the fit has
 * converged (1e-10 by default; model selection, which only ranks settings, uses a looser one).
 */
export function fitLinear(data: LinearData, classes: number, options: { l2: number; maxIterations?: number; tolerance?: number; start?: LinearFit }): LinearFit {
  const outputs = classes === 2 ? 1 : classes;
  const P = data.width * outputs + outputs;
  const theta = new Float64Array(P);
  if (options.start && options.start.outputs === outputs && options.start.W.length === data.width * outputs) {
    theta.set(options.start.W);
    theta.set(options.start.b, data.width * outputs);
  } else {
    // Intercepts at the class prior: the optimiser starts where a constant model ends.
    const prior = new Float64Array(classes);
    let total = 0;
    for (let r = 0; r < data.rows; r++) {
      const w = data.weights ? data.weights[r]! : 1;
      prior[data.y[r]!] = prior[data.y[r]!]! + w;
      total += w;
    }
    const p = (c: number) => Math.min(1 - 1e-6, Math.max(1e-6, prior[c]! / total));
    if (outputs === 1) theta[data.width] = Math.log(p(1) / p(0));
    else for (let c = 0; c < classes; c++) theta[data.width * outputs + c] = Math.log(p(c));
  }
  const objective = new Objective(data, outputs, options.l2);
  const result = lbfgs((t, g) => objective.evaluate(t, g), theta, options.maxIterations ?? 500, options.tolerance ?? 1e-10);
  return { W: theta.slice(0, data.width * outputs), b: theta.slice(data.width * outputs), outputs, iterations: result.iterations, converged: result.converged };
}

/** Probabilities [rows][classes] (binary: [P(negative), P(positive)]) of a fit on a design matrix. */
export function linearProbabilities(fit: LinearFit, Z: Float64Array, rows: number, width: number): Float64Array {
  const K = fit.outputs;
  const classes = K === 1 ? 2 : K;
  const out = new Float64Array(rows * classes);
  const z = new Float64Array(K);
  for (let r = 0; r < rows; r++) {
    logits(fit.W, fit.b, Z, r * width, width, K, z);
    if (K === 1) {
      const p = sigmoid(z[0]!);
      out[r * 2] = 1 - p;
      out[r * 2 + 1] = p;
    } else {
      let max = -Infinity;
      for (let k = 0; k < K; k++) max = Math.max(max, z[k]!);
      let sum = 0;
      for (let k = 0; k < K; k++) sum += (z[k] = Math.exp(z[k]! - max));
      for (let k = 0; k < K; k++) out[r * K + k] = z[k]! / sum;
    }
  }
  return out;
}

function logits(W: Float64Array, b: Float64Array, Z: Float64Array, offset: number, width: number, K: number, out: Float64Array): void {
  for (let k = 0; k < K; k++) out[k] = b[k]!;
  for (let j = 0; j < width; j++) {
    const x = Z[offset + j]!;
    if (x === 0) continue;
    const row = j * K;
    for (let k = 0; k < K; k++) out[k] = out[k]! + x * W[row + k]!;
  }
}

/**
 * The loss and its gradient over the rows, reading the design matrix as sparse rows: one-hot and
 * hinge columns are mostly zero, so only the nonzero entries are visited.
 */
class Objective {
  private readonly z: Float64Array;
  private readonly totalWeight: number;
  private readonly start: Uint32Array;
  private readonly index: Uint32Array;
  private readonly value: Float64Array;

  constructor(
    private readonly data: LinearData,
    private readonly K: number,
    private readonly l2: number,
  ) {
    this.z = new Float64Array(K);
    let total = 0;
    for (let r = 0; r < data.rows; r++) total += data.weights ? data.weights[r]! : 1;
    this.totalWeight = total;
    let nonzero = 0;
    for (let i = 0; i < data.rows * data.width; i++) if (data.Z[i] !== 0) nonzero++;
    this.start = new Uint32Array(data.rows + 1);
    this.index = new Uint32Array(nonzero);
    this.value = new Float64Array(nonzero);
    let at = 0;
    for (let r = 0; r < data.rows; r++) {
      this.start[r] = at;
      for (let j = 0; j < data.width; j++) {
        const x = data.Z[r * data.width + j]!;
        if (x !== 0) {
          this.index[at] = j;
          this.value[at++] = x;
        }
      }
    }
    this.start[data.rows] = at;
  }

  /** Loss at theta; writes the gradient into g. */
  evaluate(theta: Float64Array, g: Float64Array): number {
    if (this.K === 1) return this.evaluateBinary(theta, g);
    const { data, K, z, start, index, value } = this;
    const width = data.width;
    const W = theta.subarray(0, width * K);
    const b = theta.subarray(width * K);
    g.fill(0);
    const gW = g.subarray(0, width * K);
    const gb = g.subarray(width * K);
    let loss = 0;
    for (let r = 0; r < data.rows; r++) {
      const w = data.weights ? data.weights[r]! : 1;
      if (w === 0) continue;
      const from = start[r]!;
      const to = start[r + 1]!;
      for (let k = 0; k < K; k++) z[k] = b[k]!;
      for (let e = from; e < to; e++) {
        const row = index[e]! * K;
        const x = value[e]!;
        for (let k = 0; k < K; k++) z[k] = z[k]! + x * W[row + k]!;
      }
      const label = data.y[r]!;
      if (K === 1) {
        const s = z[0]!;
        loss += w * (Math.max(s, 0) - s * label + Math.log1p(Math.exp(-Math.abs(s))));
        z[0] = w * (sigmoid(s) - label);
      } else {
        let max = -Infinity;
        for (let k = 0; k < K; k++) max = Math.max(max, z[k]!);
        let sum = 0;
        for (let k = 0; k < K; k++) sum += Math.exp(z[k]! - max);
        loss += w * (Math.log(sum) + max - z[label]!);
        for (let k = 0; k < K; k++) z[k] = w * (Math.exp(z[k]! - max) / sum - (k === label ? 1 : 0));
      }
      for (let k = 0; k < K; k++) gb[k] = gb[k]! + z[k]!;
      for (let e = from; e < to; e++) {
        const row = index[e]! * K;
        const x = value[e]!;
        for (let k = 0; k < K; k++) gW[row + k] = gW[row + k]! + x * z[k]!;
      }
    }
    const scale = 1 / this.totalWeight;
    let penalty = 0;
    for (let i = 0; i < gW.length; i++) {
      gW[i] = gW[i]! * scale + this.l2 * W[i]!;
      penalty += W[i]! * W[i]!;
    }
    for (let k = 0; k < K; k++) gb[k] = gb[k]! * scale;
    return loss * scale + 0.5 * this.l2 * penalty;
  }

  /**
   * The binary case (one output), the one model selection fits hundreds of times: the same loss
   * and gradient as the general loop, without its per-class inner loops.
   */
  private evaluateBinary(theta: Float64Array, g: Float64Array): number {
    const { data, start, index, value } = this;
    const width = data.width;
    const weights = data.weights;
    const y = data.y;
    const b = theta[width]!;
    g.fill(0);
    let gb = 0;
    let loss = 0;
    for (let r = 0; r < data.rows; r++) {
      const w = weights ? weights[r]! : 1;
      if (w === 0) continue;
      const from = start[r]!;
      const to = start[r + 1]!;
      let s = b;
      for (let e = from; e < to; e++) s += value[e]! * theta[index[e]!]!;
      const label = y[r]!;
      const e = Math.exp(-Math.abs(s));
      loss += w * (Math.max(s, 0) - s * label + Math.log1p(e));
      // sigmoid(s) from the same exponential: 1 / (1 + e) for s >= 0, e / (1 + e) below.
      const residual = w * ((s >= 0 ? 1 / (1 + e) : e / (1 + e)) - label);
      gb += residual;
      for (let i = from; i < to; i++) g[index[i]!] = g[index[i]!]! + value[i]! * residual;
    }
    const scale = 1 / this.totalWeight;
    let penalty = 0;
    for (let i = 0; i < width; i++) {
      const wi = theta[i]!;
      g[i] = g[i]! * scale + this.l2 * wi;
      penalty += wi * wi;
    }
    g[width] = gb * scale;
    return loss * scale + 0.5 * this.l2 * penalty;
  }
}

/**
 * Limited-memory BFGS with a backtracking (Armijo) line search; minimises f in place from x.
 * Stops when the gradient's largest component or the relative decrease is negligible.
 */
export function lbfgs(f: (x: Float64Array, g: Float64Array) => number, x: Float64Array, maxIterations: number, tolerance = 1e-10): { value: number; iterations: number; converged: boolean } {
  const n = x.length;
  const g = new Float64Array(n);
  let value = f(x, g);
  const s: Float64Array[] = [];
  const yv: Float64Array[] = [];
  const rho: number[] = [];
  const d = new Float64Array(n);
  const alpha = new Float64Array(HISTORY);
  const xNew = new Float64Array(n);
  const gNew = new Float64Array(n);
  let iterations = 0;
  for (; iterations < maxIterations; iterations++) {
    if (maxAbs(g) < 1e-7) return { value, iterations, converged: true };
    // Two-loop recursion: d = -H g.
    d.set(g);
    for (let i = s.length - 1; i >= 0; i--) {
      alpha[i] = rho[i]! * dot(s[i]!, d);
      axpy(-alpha[i]!, yv[i]!, d);
    }
    const gamma = s.length ? dot(s[s.length - 1]!, yv[yv.length - 1]!) / dot(yv[yv.length - 1]!, yv[yv.length - 1]!) : 1 / Math.max(1, Math.sqrt(dot(g, g)));
    for (let i = 0; i < n; i++) d[i] = d[i]! * gamma;
    for (let i = 0; i < s.length; i++) {
      const beta = rho[i]! * dot(yv[i]!, d);
      axpy(alpha[i]! - beta, s[i]!, d);
    }
    for (let i = 0; i < n; i++) d[i] = -d[i]!;
    let slope = dot(g, d);
    if (slope >= 0) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      s.length = 0;
      yv.length = 0;
      rho.length = 0;
      for (let i = 0; i < n; i++) d[i] = -g[i]! / Math.max(1, Math.sqrt(dot(g, g)));
      slope = dot(g, d);
    }
    let step = 1;
    let next = Infinity;
    for (let tries = 0; tries < 40; tries++) {
      for (let i = 0; i < n; i++) xNew[i] = x[i]! + step * d[i]!;
      next = f(xNew, gNew);
      if (next <= value + 1e-4 * step * slope) break;
      step *= 0.5;
    }
    if (!(next <= value)) return { value, iterations, converged: false };
    const sk = new Float64Array(n);
    const yk = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      sk[i] = xNew[i]! - x[i]!;
      yk[i] = gNew[i]! - g[i]!;
    }
    const sy = dot(sk, yk);
    if (sy > 1e-12) {
      if (s.length === HISTORY) {
        s.shift();
        yv.shift();
        rho.shift();
      }
      s.push(sk);
      yv.push(yk);
      rho.push(1 / sy);
    }
    const decrease = value - next;
    x.set(xNew);
    g.set(gNew);
    value = next;
    if (decrease <= tolerance * Math.max(1, Math.abs(value))) return { value, iterations: iterations + 1, converged: true };
  }
  return { value, iterations, converged: false };
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function axpy(a: number, x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < y.length; i++) y[i] = y[i]! + a * x[i]!;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}
