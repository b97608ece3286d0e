import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GBT_KERNELS_WASM } from '../../lib/training/gbt-kernels';
import { KernelRuntime } from '../../lib/training/kernels';
import { Rng } from '../../lib/random';
import { compileKernels } from '../../scripts/kernels';

const root = resolve(import.meta.dirname, '../..');

describe('the trainer kernels (WebAssembly)', () => {
  it('ship the bytes that gbt-kernels.wat compiles to (run `npm run build:kernels` after editing it)', async () => {
    const wat = readFileSync(resolve(root, 'lib/training/gbt-kernels.wat'), 'utf8');
    const bytes = await compileKernels(wat);
    expect(Buffer.from(bytes).toString('base64')).toBe(GBT_KERNELS_WASM);
  });

  it('compute e^x to within a few units in the last place, clamped far out', () => {
    const runtime = new KernelRuntime(1024, { threads: 1 });
    try {
      const rng = new Rng(7);
      let worst = 0;
      for (let i = 0; i < 20_000; i++) {
        const x = (rng.next() * 2 - 1) * 700;
        worst = Math.max(worst, Math.abs(runtime.k.exp(x) / Math.exp(x) - 1));
      }
      expect(worst).toBeLessThan(1e-15);
      expect(runtime.k.exp(0)).toBe(1);
      expect(runtime.k.exp(-1000)).toBeGreaterThan(0);
      expect(Number.isFinite(runtime.k.exp(1000))).toBe(true);
    } finally {
      runtime.close();
    }
  });

  it('give the same gradients and histograms on two threads as on one', () => {
    const rows = 120_000;
    const cols = 7;
    const rng = new Rng(3);
    const score = Float64Array.from({ length: rows }, () => rng.normal() * 3);
    const y = Int32Array.from({ length: rows }, () => (rng.next() < 0.3 ? 1 : 0));
    const w = Float64Array.from({ length: rows }, () => 0.5 + rng.next());
    const bins = Uint8Array.from({ length: rows * cols }, (_, i) => (i % cols === 0 ? Math.floor(rng.next() * 4) : Math.floor(rng.next() * 256)));
    const results = [1, 2].map((threads) => {
      const runtime = new KernelRuntime(rows * (8 + 4 + 8 + 8 + 4 + cols) + cols * 6144 + 4096, { threads });
      try {
        const buffer = runtime.memory.buffer;
        let next = runtime.base;
        const take = (bytes: number) => {
          const at = next;
          next = Math.ceil((next + bytes) / 16) * 16;
          return at;
        };
        const at = { score: take(rows * 8), y: take(rows * 4), w: take(rows * 8), gh: take(rows * 8), order: take(rows * 4), bins: take(rows * cols), active: take(cols * 4), hist: take(cols * 6144) };
        new Float64Array(buffer, at.score, rows).set(score);
        new Int32Array(buffer, at.y, rows).set(y);
        new Float64Array(buffer, at.w, rows).set(w);
        new Uint32Array(buffer, at.order, rows).set(Uint32Array.from({ length: rows }, (_, r) => r));
        new Uint8Array(buffer, at.bins, rows * cols).set(bins);
        runtime.gradients(at, rows);
        runtime.k.zero(at.hist, cols * 6144);
        runtime.histogram(at, cols, cols, 0, rows, at.hist);
        return { gh: Array.from(new Float32Array(buffer, at.gh, rows * 2)), hist: Array.from(new Float64Array(buffer, at.hist, cols * 768)) };
      } finally {
        runtime.close();
      }
    });
    // Logistic-loss gradient and hessian of a few rows, by hand.
    for (const r of [0, 1, rows - 1]) {
      const p = 1 / (1 + Math.exp(-score[r]!));
      expect(results[0]!.gh[2 * r]).toBeCloseTo(w[r]! * (p - y[r]!), 6);
      expect(results[0]!.gh[2 * r + 1]).toBeCloseTo(w[r]! * p * (1 - p), 6);
    }
    expect(results[1]!.gh).toEqual(results[0]!.gh);
    expect(results[1]!.hist).toEqual(results[0]!.hist);
    // Every row is counted once per feature.
    const counts = results[0]!.hist.filter((_, i) => i % 3 === 2 && i < 768);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(rows);
  });
});
