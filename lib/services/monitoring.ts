import { z } from 'zod';
import { ConflictError, IntegrityError, NotFoundError, ValidationError } from '../errors';
import { readPredictionLog, type PredictionRecord } from '../monitoring/log';
import {
  churnQualityReport,
  compareModels,
  nboQualityReport,
  outcomeRange,
  parseContender,
  type ModelComparison,
  type ChurnQuality,
  type NboQuality,
  type QualityReport,
} from '../monitoring/quality';
import { logger, telemetry } from '../observability';
import { isBinaryMetrics } from '../registry/manifest';
import type { ModelRegistry } from '../registry/index';
import type { SegmentRunStore } from '../segments/runs';
import { casUpdate, type CasChange } from '../storage/cas';
import type { ObjectStore } from '../storage/index';
import type { WarehouseHandle } from '../warehouse/index';
import { readChurnOutcomes, readOfferOutcomes, type ChurnOutcome } from '../warehouse/outcomes';

export const MONITORED_MODELS = ['churn', 'nbo'] as const;
export type MonitoredModel = (typeof MONITORED_MODELS)[number];

const REPORTS_PREFIX = 'monitoring';

/** What the scheduled check found for one model. */
export interface QualityCheck {
  model: MonitoredModel;
  /** The served version judged: the one the serving alias points at, once its predictions have outcomes. */
  version: number | null;
  realised_auc: number | null;
  holdout_auc: number | null;
  /**
   * Drift in the latest statistics of the scheduled segments against their own earlier runs under
   * the served version (scores and inputs); the comparison with the training base is shown on
   * the segment, not alarmed on: a segment differs from the whole base by design.
   */
  drift: { segment: string; kind: string; feature?: string; psi: number; level: string; against: 'baseline' | 'previous'; reference: string }[];
  /** Why the check raised the alarm (empty: nothing wrong). */
  alarms: string[];
  /** Whether training was started because of the alarms. */
  retraining: boolean;
  message: string;
}

/**
 * Realised quality: reads the prediction log and the warehouse's outcomes, reports per model
 * version and week, stores every report (so the trend is kept) and compares champion and
 * challenger on the same customers. The scheduled check raises an alarm (and can start training)
 * when a served model's realised AUC falls too far below its holdout AUC.
 */
export class MonitoringService {
  constructor(
    private readonly deps: {
      results: ObjectStore;
      registry: ModelRegistry;
      warehouse: () => Promise<WarehouseHandle>;
      settings: { outcomeHorizonDays: number; aucMargin: number; servingAlias: string; windowDays: number; maxFilesPerDay: number };
      /** Segment statistics, and the segments whose latest drift the scheduled check reads. */
      segments?: { runs: SegmentRunStore; ids: string[] };
      /** Starts training of a model (the scheduled check, when quality drops); absent: alarm only. */
      retrain?: (model: MonitoredModel) => Promise<void>;
      now?: () => Date;
    },
  ) {}

  /**
   * Computes a model's realised quality since a date (by default the last MONITOR_WINDOW_DAYS) and
   * stores the report.
   */
  async report(model: string, options: { since?: string; onProgress?: (done: number, total: number) => void } = {}): Promise<QualityReport> {
    const name = checkModel(model);
    const since = checkSince(options.since) ?? this.windowStart();
    const log = await this.readLog([name], since, options.onProgress);
    return this.measure(name, log.records, log.files, since);
  }

  /** The log's records of the given models since a day, read once however many models ask. */
  private readLog(models: readonly MonitoredModel[], since: string, onProgress?: (done: number, total: number) => void) {
    return readPredictionLog(this.deps.results, { models, since, maxFilesPerDay: this.deps.settings.maxFilesPerDay, onProgress });
  }

  /** The churn outcomes the records need (one range scan of the history), and that range. */
  private async churnOutcomes(records: readonly PredictionRecord[]): Promise<{ range: { from: string; to: string } | null; outcomes: Map<string, ChurnOutcome[]> }> {
    const range = outcomeRange(records, this.deps.settings.outcomeHorizonDays);
    return { range, outcomes: range ? await readChurnOutcomes((await this.deps.warehouse()).warehouse, range) : new Map() };
  }

  /** One model's report from its records and the warehouse's outcomes, stored with its place in the trend. */
  private async measure(name: MonitoredModel, all: readonly PredictionRecord[], files: { read: number; total: number }, since: string): Promise<QualityReport> {
    const records = all.filter((r) => r.model === name);
    const horizonDays = this.deps.settings.outcomeHorizonDays;
    const computedAt = (this.deps.now?.() ?? new Date()).toISOString();
    let report: QualityReport;
    if (name === 'churn') {
      const { range, outcomes } = await this.churnOutcomes(records);
      report = churnQualityReport(records, outcomes, { horizonDays, since, computedAt, range, files });
      await this.addHoldoutAuc(report);
    } else {
      const range = outcomeRange(records, horizonDays);
      const outcomes = range ? await readOfferOutcomes((await this.deps.warehouse()).warehouse, range) : new Map();
      report = nboQualityReport(records, outcomes, { horizonDays, since, computedAt, range, files });
      await this.addHoldoutAuc(report);
    }
    const body = new TextEncoder().encode(JSON.stringify(report));
    await this.deps.results.put(`${REPORTS_PREFIX}/${name}/reports/${computedAt.replace(/[-:.]/g, '')}.json`, body, { contentType: 'application/json' });
    await this.deps.results.put(`${REPORTS_PREFIX}/${name}/latest.json`, body, { contentType: 'application/json' });
    await this.appendTrend(report);
    return report;
  }

  /** The latest stored report, with the overall realised figures of the reports before it (the trend): two reads. */
  async performance(model: string): Promise<{ latest: QualityReport; history: TrendPoint[] }> {
    const name = checkModel(model);
    const [latest, trend] = await Promise.all([this.deps.results.get(`${REPORTS_PREFIX}/${name}/latest.json`), this.deps.results.get(trendKey(name))]);
    if (!latest) {
      throw new NotFoundError(`No realised quality has been measured for ${name} yet: run loyalty-ml monitor ${name} (or wait for the scheduled check)`, { code: 'performance_not_measured' });
    }
    return { latest: decodeJson<QualityReport>(latest.body), history: trend ? decodeTrend(trend.body, name) : [] };
  }

  /** Adds a report's overall figures to the model's trend (compare-and-swap, so concurrent reports keep both; the last 52). */
  private async appendTrend(report: QualityReport): Promise<void> {
    const key = trendKey(report.model);
    const point: TrendPoint = { computed_at: report.computed_at, versions: report.versions.map((v) => ({ version: v.version, shadow: v.shadow, matched: v.overall.matched, quality: v.overall.quality })) };
    await casUpdate(
      this.deps.results,
      key,
      (stored): CasChange<void> => {
        const points = stored ? decodeTrend(stored.body, report.model) : [];
        const next = [...points.filter((p) => p.computed_at !== point.computed_at), point].sort((a, b) => a.computed_at.localeCompare(b.computed_at)).slice(-52);
        return { write: new TextEncoder().encode(JSON.stringify(next)), result: undefined };
      },
      { contention: `Could not add to the trend of ${report.model}: other reports kept writing it` },
    );
  }

  /**
   * Two sides (aliases as logged, or version numbers) on the same customers' realised outcomes:
   * churn on their churn, NBO on what happened to the offers actually sent (each side's probability
   * of the offer made against its acceptance).
   */
  async compare(model: string, a: string, b: string, options: { since?: string } = {}): Promise<ModelComparison> {
    const name = checkModel(model);
    if (a === b) throw new ValidationError(`compare needs two different sides, got ${a} twice`);
    const { records } = await this.readLog([name], checkSince(options.since) ?? this.windowStart());
    const sides = { a: parseContender(a), b: parseContender(b), aLabel: a, bLabel: b };
    const horizon = { horizonDays: this.deps.settings.outcomeHorizonDays };
    if (name === 'churn') return compareModels('churn', records, { churn: (await this.churnOutcomes(records)).outcomes }, sides, horizon);
    const range = outcomeRange(records, this.deps.settings.outcomeHorizonDays);
    const offers = range ? await readOfferOutcomes((await this.deps.warehouse()).warehouse, range) : new Map();
    return compareModels('nbo', records, { offers }, sides, horizon);
  }

  /**
   * The promotion gate on realised outcomes: the version `ref` names must beat the version `alias`
   * points at now, on the same customers' realised outcomes (churn: their churn; NBO: the offers
   * sent to them; DeLong, p < 0.05). Refuses otherwise.
   * An alias that points nowhere yet has nothing to beat.
   */
  async requireRealisedWin(model: string, alias: string, ref: string, options: { since?: string } = {}): Promise<ModelComparison | null> {
    const current = await this.deps.registry.getAlias(model, alias);
    if (!current) return null;
    const candidate = await this.deps.registry.resolveVersion(model, ref);
    if (candidate === current.version) return null;
    const result = await this.compare(model, String(current.version), String(candidate), options);
    if (result.winner !== 'b') {
      throw new ConflictError(`Refused to move ${model}@${alias} from v${current.version} to v${candidate}: the realised-outcome gate needs v${candidate} to win. ${result.verdict}`, { code: 'challenger_not_better' });
    }
    return result;
  }

  /**
   * The scheduled check: fresh reports for churn and NBO. A model raises the alarm when the churn
   * version the serving alias points at has a realised AUC more than the margin below its holdout AUC, or when the
   * latest statistics of a scheduled segment show major drift of its scores. An alarm is counted
   * (RealisedQualityAlarms, which a CloudWatch alarm watches), logged, and starts training when
   * the check may (the new version still faces every gate and lands in staging).
   */
  async check(): Promise<QualityCheck[]> {
    const out: QualityCheck[] = [];
    const drifts = await this.latestDrift();
    const since = this.windowStart();
    const log = await this.readLog(MONITORED_MODELS, since);
    for (const model of MONITORED_MODELS) {
      const report = await this.measure(model, log.records, log.files, since);
      const alarms: string[] = [];
      let version: number | null = null;
      let realised: number | null = null;
      let holdout: number | null = null;
      // Churn: AUC on realised churn. NBO: AUC of P(accept) of the offers actually sent (acceptance versions have a holdout AUC to hold it against).
      const current = await this.deps.registry.getAlias(model, this.deps.settings.servingAlias).catch(() => null);
      const measured = report.versions.filter((v) => !v.shadow && v.version !== null && realisedAuc(model, v.overall.quality) !== null);
      const served = measured.find((v) => v.version === current?.version) ?? (current ? undefined : measured[0]);
      if (served) {
        version = served.version;
        realised = realisedAuc(model, served.overall.quality)!;
        holdout = served.holdout_auc ?? null;
        if (holdout !== null && realised < holdout - this.deps.settings.aucMargin) {
          alarms.push(`realised AUC ${realised} of v${version} is more than ${this.deps.settings.aucMargin} below its holdout AUC ${holdout}`);
        }
      }
      const drift = drifts.filter((d) => d.model === model).map(({ model: _m, ...d }) => d);
      for (const d of drift) {
        if (d.level === 'major') alarms.push(`major drift of ${d.kind === 'feature' ? `input ${d.feature}` : `${model}'s scores`} in segment ${d.segment} against its ${d.against} run, PSI ${round(d.psi)} (${d.reference})`);
      }
      let retraining = false;
      if (alarms.length) {
        telemetry.count('RealisedQualityAlarms', 1, { Model: model });
        logger.warn('model quality alarm', { model, model_version: version, alarms });
        if (this.deps.retrain) {
          await this.deps.retrain(model);
          retraining = true;
        }
      }
      const quality = realised === null ? `no realised ${model === 'churn' ? 'churn' : 'offer'} outcomes yet` : `v${version}: realised AUC ${realised}${holdout === null ? '' : ` against holdout ${holdout}`}`;
      out.push({ model, version, realised_auc: realised, holdout_auc: holdout, drift, alarms, retraining, message: `${quality}; ${drift.length} segment drift figure${drift.length === 1 ? '' : 's'}` });
    }
    return out;
  }

  /** Every model's drift in the latest finished statistics of each watched segment (one read per segment). */
  private async latestDrift(): Promise<(QualityCheck['drift'][number] & { model: string })[]> {
    const out: (QualityCheck['drift'][number] & { model: string })[] = [];
    for (const segment of this.deps.segments?.ids ?? []) {
      const history = await this.deps.segments!.runs.history(segment).catch(() => []);
      for (const d of history[0]?.drift ?? []) {
        // Only a change since the segment's own earlier runs counts (entries of earlier releases compared with the holdout have no `against`).
        if (d.against !== 'baseline' && d.against !== 'previous') continue;
        out.push({ model: d.model, segment, kind: d.kind, ...(d.feature ? { feature: d.feature } : {}), psi: d.psi, level: d.level, against: d.against, reference: d.reference });
      }
    }
    return out;
  }

  /** The first day of the default window: MONITOR_WINDOW_DAYS before today. */
  private windowStart(): string {
    const now = this.deps.now?.() ?? new Date();
    return new Date(now.getTime() - this.deps.settings.windowDays * 86_400_000).toISOString().slice(0, 10);
  }

  /** Each version's holdout AUC from its manifest (NBO: acceptance versions', on the offers of their evaluation window). */
  private async addHoldoutAuc(report: QualityReport): Promise<void> {
    for (const v of report.versions) {
      if (v.version === null) continue;
      try {
        const manifest = await this.deps.registry.getManifest(report.model, v.version);
        const holdout = manifest.metrics?.holdout;
        v.holdout_auc = holdout && isBinaryMetrics(holdout) && holdout.auc !== null ? round(holdout.auc) : null;
      } catch {
        v.holdout_auc = null;
      }
    }
  }
}

/** The AUC a period's realised quality has: churn's own, NBO's on the offers made. */
function realisedAuc(model: MonitoredModel, quality: unknown): number | null {
  if (!quality) return null;
  if (model === 'churn') return (quality as ChurnQuality).auc ?? null;
  return (quality as NboQuality).offers_made?.auc ?? null;
}

/** One report's overall figures, as the trend keeps them. */
const TrendPointSchema = z.object({
  computed_at: z.string(),
  versions: z.array(z.object({ version: z.number().int().positive().nullable(), shadow: z.boolean(), matched: z.number().int().nonnegative(), quality: z.unknown() })),
});
export type TrendPoint = z.infer<typeof TrendPointSchema>;
const TrendSchema = z.array(TrendPointSchema);

/** A stored trend, checked against its schema (a malformed one is an integrity fault, not a cast). */
function decodeTrend(body: Uint8Array, model: string): TrendPoint[] {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(body));
  } catch {
    throw new IntegrityError(`The stored quality trend of ${model} is not valid JSON`);
  }
  const parsed = TrendSchema.safeParse(json);
  if (!parsed.success) throw new IntegrityError(`The stored quality trend of ${model} is malformed: ${parsed.error.issues[0]?.message ?? 'unknown shape'}`);
  return parsed.data;
}

function trendKey(model: string): string {
  return `${REPORTS_PREFIX}/${model}/trend.json`;
}

function decodeJson<T>(body: Uint8Array): T {
  return JSON.parse(new TextDecoder().decode(body)) as T;
}

function checkModel(model: string): MonitoredModel {
  if (!(MONITORED_MODELS as readonly string[]).includes(model)) {
    throw new ValidationError(`Unknown model "${model}": realised quality is measured for ${MONITORED_MODELS.join(' and ')}`, { code: 'unknown_model' });
  }
  return model as MonitoredModel;
}

function checkSince(since: string | undefined): string | undefined {
  if (since === undefined) return undefined;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(since) || Number.isNaN(Date.parse(`${since}T00:00:00Z`))) {
    throw new ValidationError(`--since must be a date as YYYY-MM-DD, got "${since}"`, { code: 'invalid_date' });
  }
  return since;
}

function round(v: number): number {
  return Math.round(v * 10000) / 10000;
}
