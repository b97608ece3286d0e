import { ValidationError } from '../errors';
import { ModelRunner } from '../inference/runner';
import type { ModelManifest, ModelRegistry, VersionRef } from '../registry/index';
import { binaryMetrics, multiclassMetrics } from '../metrics';

/** Labelled rows to evaluate on: raw records keyed by column, and class-index labels. */
export interface EvaluationData {
  records: Record<string, unknown>[];
  y: Int32Array;
  description: string;
}

export interface EvaluationReport {
  manifest: ModelManifest;
  data: string;
  rows: number;
  metrics: Record<string, unknown>;
  /** The evaluated data's own class frequencies as a constant prediction. */
  baseline_prior: Record<string, unknown>;
}

/** Scores labelled rows with a registry version and computes the metrics for its kind of output. */
export async function evaluateVersion(registry: ModelRegistry, name: string, ref: VersionRef, data: EvaluationData): Promise<EvaluationReport> {
  const { manifest, bytes } = await registry.readModel(name, ref);
  if (data.records.length === 0) throw new ValidationError('No labelled rows to evaluate on');
  const runner = await ModelRunner.create(manifest, bytes, { threads: 2 });
  try {
    // The columns the model reads (before its own encoding), as predict checks them: every record carries the same keys.
    const columns = Object.keys(data.records[0]!);
    const missing = runner.rawColumns.filter((c) => !columns.includes(c));
    if (missing.length) {
      throw new ValidationError(
        `${name} v${manifest.version} takes ${missing.join(', ')}, which ${data.description} does not have (it has ${columns.join(', ')}); evaluate it on data with its features (--csv FILE --label COLUMN)`,
        { code: 'model_not_feedable' },
      );
    }
    const P = await runner.predictRecords(data.records);
    const k = manifest.output.classes.length;
    const counts = new Array<number>(k).fill(0);
    for (const label of data.y) counts[label]!++;
    const prior = new Float64Array(data.y.length * k);
    for (let r = 0; r < data.y.length; r++) prior.set(counts.map((c) => c / data.y.length), r * k);
    const metricsOf = (M: Float64Array): Record<string, unknown> => {
      if (manifest.output.kind === 'binary') {
        const pos = manifest.output.classes.indexOf(manifest.output.positive_class!);
        const p = Float64Array.from({ length: data.y.length }, (_, r) => M[r * k + pos]!);
        return { ...binaryMetrics(p, Int32Array.from(data.y, (label) => (label === pos ? 1 : 0))) };
      }
      return { ...multiclassMetrics(M, data.y, manifest.output.classes) };
    };
    return { manifest, data: data.description, rows: data.y.length, metrics: metricsOf(P), baseline_prior: metricsOf(prior) };
  } finally {
    await runner.release();
  }
}
