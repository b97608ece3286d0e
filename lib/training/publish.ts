import type { BackgroundRows } from '../explain/background';
import { prepareModel, type OutputDescription } from '../inference/validate';
import { externalLineage, type ModelManifest, type ModelRegistry } from '../registry/index';

export interface ExternalModel {
  name: string;
  bytes: Uint8Array;
  /** Feature names in the order the model takes them (or the names of its one-feature inputs). */
  features: string[];
  output?: OutputDescription;
  notes?: string | null;
  /** The background its reasons are computed over (rows in `features` order), or null and why there is none. */
  background?: { rows: BackgroundRows | null; source: string };
}

/**
 * Publishes a model trained outside loyalty-ml (scikit-learn, Keras, XGBoost, LightGBM, …) as a
 * new registry version, after prepareModel has checked (and if needed rewritten) it. Such a
 * version has no loyalty-ml training lineage, metrics or gate results; the manifest says so.
 */
export async function publishExternalModel(registry: ModelRegistry, model: ExternalModel): Promise<ModelManifest> {
  const prepared = await prepareModel(model.bytes, model.features, model.output);
  return registry.publish(model.name, prepared.bytes, {
    status: 'ready',
    refusal_reasons: [],
    model: { producer: prepared.producer, opsets: prepared.opsets, rewrites: prepared.rewrites.map((r) => ({ ...r })) },
    input: { ...prepared.input, preprocessing: { applied_in: 'graph', steps: [] } },
    output: prepared.output,
    lineage: externalLineage(model.notes ?? null),
    metrics: null,
    holdout_fingerprint: null,
    gates: null,
    explanation: { method: 'coalitions', background: model.background?.rows ?? null, source: model.background?.source ?? 'none given' },
  });
}
