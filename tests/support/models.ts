import { prepareModel } from '../../lib/inference/validate';
import type { ManifestDraft, ModelManifest, ModelRegistry } from '../../lib/registry/index';
import { externalLineage } from '../../lib/registry/index';
import { exportNet, toFloat32 } from '../../lib/training/export';
import { initNet } from '../../lib/training/nn';
import { designWidth, fitDesign } from '../../lib/training/design';
import { FEATURES } from '../../lib/catalog';
import { OFFER_IDS } from '../../lib/catalog';
import { OnnxGraphBuilder } from '../../lib/onnx/writer';
import { Rng } from '../../lib/random';

/**
 * Small real ONNX models over the 10 warehouse features, built with the project's own exporter
 * (untrained, random weights): enough to exercise loading, checksums and serving without a
 * training run. `constant` zeroes the weights so every customer gets the same answer.
 */
export async function tinyModel(kind: 'churn' | 'nbo', options: { seed?: number; constant?: boolean; acceptance?: boolean } = {}): Promise<{ bytes: Uint8Array; draft: ManifestDraft }> {
  if (kind === 'nbo' && options.acceptance) return tinyAcceptanceModel(options.seed ?? 1);
  const rows = 64;
  const X = Float64Array.from({ length: rows * FEATURES.length }, (_, i) => ((i * 7919) % 1000) / 10);
  const all = Uint32Array.from({ length: rows }, (_, i) => i);
  const columns = FEATURES.map((name) => ({ name, kind: 'numeric' as const }));
  const { design } = fitDesign(columns, X, all, new Int32Array(rows), { knots: 0, log: true, categorical: {} }, 1);
  const classes = kind === 'churn' ? 2 : OFFER_IDS.length;
  const net = initNet(designWidth(design), [8], classes, options.seed ?? 1);
  if (options.constant) {
    for (const layer of net.layers) layer.W.fill(0);
    const out = net.layers[net.layers.length - 1]!;
    out.b.fill(0);
    out.b[0] = 8; // one class (or a high churn logit) for everyone, at ~100% confidence
  }
  const bytes = exportNet(toFloat32({ kind: 'net', design, net, classes }), { name: kind, producerVersion: 'test' });
  const labels = kind === 'churn' ? ['0', '1'] : [...OFFER_IDS];
  const prepared = await prepareModel(bytes, [...FEATURES], { classes: labels, positiveClass: kind === 'churn' ? '1' : undefined });
  return { bytes: prepared.bytes, draft: draftOf(prepared, 'test model') };
}

/** The manifest draft of a model published from elsewhere. */
function draftOf(prepared: Awaited<ReturnType<typeof prepareModel>>, notes: string): ManifestDraft {
  return {
    status: 'ready',
    refusal_reasons: [],
    model: { producer: prepared.producer, opsets: prepared.opsets, rewrites: [] },
    input: { ...prepared.input, preprocessing: { applied_in: 'graph', steps: [] } },
    output: prepared.output,
    lineage: externalLineage(notes),
    metrics: null,
    holdout_fingerprint: null,
    gates: null,
  };
}

/**
 * An NBO acceptance model as models trained elsewhere export them: one linear score per offer
 * through a sigmoid, [N, 8] independent probabilities (published as multilabel, its kind detected).
 */
async function tinyAcceptanceModel(seed: number): Promise<{ bytes: Uint8Array; draft: ManifestDraft }> {
  const rng = new Rng(seed);
  const D = FEATURES.length;
  const K = OFFER_IDS.length;
  const g = new OnnxGraphBuilder('nbo');
  const x = g.input('features', 'float32', ['N', D]);
  // Missing values (NaN) read as 0, and every feature scaled to a small range before the weights.
  const [nan] = g.node('IsNaN', [x]);
  const [filled] = g.node('Where', [nan!, g.constant('zero', [1], [0]), x]);
  const [scaled] = g.node('Mul', [filled!, g.constant('scale', [D], Array.from({ length: D }, () => 0.01))]);
  const [mm] = g.node('MatMul', [scaled!, g.constant('W', [D, K], Array.from({ length: D * K }, () => rng.normal()))]);
  const [z] = g.node('Add', [mm!, g.constant('b', [K], Array.from({ length: K }, () => rng.normal() - 1))]);
  g.node('Sigmoid', [z!], { outputs: ['acceptance'] });
  g.output('acceptance', 'float32', ['N', K]);
  const prepared = await prepareModel(g.build({ producerVersion: 'test' }), [...FEATURES], { classes: [...OFFER_IDS] });
  return { bytes: prepared.bytes, draft: draftOf(prepared, 'test acceptance model') };
}

/** Publishes a tiny model and promotes it. */
export async function publishTiny(
  registry: ModelRegistry,
  kind: 'churn' | 'nbo',
  alias = 'production',
  /** `background`: rows its reasons are computed over, as `publish --background` stores them. */
  options: { seed?: number; constant?: boolean; acceptance?: boolean; background?: (number | null)[][] } = {},
): Promise<ModelManifest> {
  const { bytes, draft } = await tinyModel(kind, options);
  if (options.background) draft.explanation = { method: 'coalitions', background: options.background, source: 'test rows' };
  const manifest = await registry.publish(kind, bytes, draft);
  await registry.promote(kind, alias, manifest.version);
  return manifest;
}
