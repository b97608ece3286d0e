import { prepareModel } from '../../lib/inference/validate';
import type { ManifestDraft, ModelManifest, ModelRegistry } from '../../lib/registry/index';
import { externalLineage } from '../../lib/registry/index';
import { exportNet, toFloat32 } from '../../lib/training/export';
import { initNet } from '../../lib/training/nn';
import { designWidth, fitDesign } from '../../lib/training/design';
import { FEATURES } from '../../lib/catalog';
import { OFFER_IDS } from '../../lib/catalog';

/**
 * Small real ONNX models over the 10 warehouse features, built with the project's own exporter
 * (untrained, random weights): enough to exercise loading, checksums and serving without a
 * training run. `constant` zeroes the weights so every customer gets the same answer.
 */
export async function tinyModel(kind: 'churn' | 'nbo', options: { seed?: number; constant?: boolean } = {}): Promise<{ bytes: Uint8Array; draft: ManifestDraft }> {
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
  return {
    bytes: prepared.bytes,
    draft: {
      status: 'ready',
      refusal_reasons: [],
      model: { producer: prepared.producer, opsets: prepared.opsets, rewrites: [] },
      input: { ...prepared.input, preprocessing: { applied_in: 'graph', steps: [] } },
      output: prepared.output,
      lineage: externalLineage('test model'),
      metrics: null,
      holdout_fingerprint: null,
      gates: null,
    },
  };
}

/** Publishes a tiny model and promotes it. */
export async function publishTiny(registry: ModelRegistry, kind: 'churn' | 'nbo', alias = 'production', options: { seed?: number; constant?: boolean } = {}): Promise<ModelManifest> {
  const { bytes, draft } = await tinyModel(kind, options);
  const manifest = await registry.publish(kind, bytes, draft);
  await registry.promote(kind, alias, manifest.version);
  return manifest;
}
