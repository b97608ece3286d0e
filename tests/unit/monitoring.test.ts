import { makeVector, Table, tableFromIPC, tableToIPC, type Vector } from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { aucWithInterval, delongTest, rocAuc } from '../../lib/metrics';
import { decodeRecords, readPredictionLog, type PredictionRecord } from '../../lib/monitoring/log';
import { churnOutcomeFor, churnQualityReport, compareChurn, compareModels, isoWeek, nboQualityReport } from '../../lib/monitoring/quality';
import { ModelRegistry } from '../../lib/registry/index';
import { Rng } from '../../lib/random';
import { customerFeatures, MemoryFeatures, PROFILE, testApp } from '../support/app';
import { toInline } from '../../lib/segments/chunks';
import { publishTiny } from '../support/models';
import { FaultyStore, tempFsStore } from '../support/registry';

/** DeLong's variance the slow way: the O(m·n) structural components, straight from the 1988 paper. */
function naiveDelong(sets: number[][], y: number[]): { aucs: number[]; cov: number[][] } {
  const pos = y.flatMap((v, i) => (v ? [i] : []));
  const neg = y.flatMap((v, i) => (v ? [] : [i]));
  const psi = (a: number, b: number) => (a > b ? 1 : a === b ? 0.5 : 0);
  const V10 = sets.map((s) => pos.map((i) => neg.reduce((t, j) => t + psi(s[i]!, s[j]!), 0) / neg.length));
  const V01 = sets.map((s) => neg.map((j) => pos.reduce((t, i) => t + psi(s[i]!, s[j]!), 0) / pos.length));
  const aucs = V10.map((v) => v.reduce((a, b) => a + b, 0) / v.length);
  const cov = (X: number[][], r: number, q: number) => {
    const mr = X[r]!.reduce((a, b) => a + b, 0) / X[r]!.length;
    const mq = X[q]!.reduce((a, b) => a + b, 0) / X[q]!.length;
    return X[r]!.reduce((t, v, k) => t + (v - mr) * (X[q]![k]! - mq), 0) / (X[r]!.length - 1);
  };
  return { aucs, cov: sets.map((_, r) => sets.map((__, q) => cov(V10, r, q) / pos.length + cov(V01, r, q) / neg.length)) };
}

function scoredSample(n: number, seed: number) {
  const rng = new Rng(seed);
  const y: number[] = [];
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < n; i++) {
    const signal = rng.normal();
    y.push(rng.next() < 1 / (1 + Math.exp(-(signal * 1.5 - 1))) ? 1 : 0);
    // Rounded scores make ties, which DeLong counts one half.
    a.push(Math.round((signal + rng.normal()) * 4) / 4);
    b.push(Math.round((signal + 0.5 * rng.normal()) * 4) / 4);
  }
  return { y, a, b };
}

describe('DeLong', () => {
  it('gives the AUC interval and the paired test of the slow textbook computation, ties included', () => {
    const { y, a, b } = scoredSample(400, 3);
    const slow = naiveDelong([a, b], y);

    const interval = aucWithInterval(a, y);
    const test = delongTest(a, b, y);

    expect(interval.auc).toBeCloseTo(rocAuc(a, y), 12);
    expect(interval.se).toBeCloseTo(Math.sqrt(slow.cov[0]![0]!), 12);
    expect(interval.lower).toBeCloseTo(interval.auc - 1.959964 * interval.se, 12);
    expect(test.auc_b).toBeCloseTo(slow.aucs[1]!, 12);
    expect(test.se).toBeCloseTo(Math.sqrt(slow.cov[0]![0]! + slow.cov[1]![1]! - 2 * slow.cov[0]![1]!), 12);
    // The less noisy score wins clearly on 400 rows.
    expect(test.difference).toBeGreaterThan(0);
    expect(test.p_value).toBeLessThan(0.05);
  });

  it('finds no difference between a score and itself', () => {
    const { y, a } = scoredSample(200, 5);
    const same = delongTest(a, a, y);
    expect(same).toMatchObject({ difference: 0, z: 0 });
    expect(same.p_value).toBeCloseTo(1, 6);
  });
});

const record = (over: Partial<PredictionRecord>): PredictionRecord => ({
  t: '2026-11-20T10:00:00.000Z',
  customer_id: 'c1',
  model: 'churn',
  source: 'model',
  version: 1,
  alias: 'production',
  shadow: false,
  as_of: '2026-11-01',
  origin: 'req:x',
  churn_probability: 0.5,
  ...over,
});

describe('joining predictions with outcomes', () => {
  it('takes the first snapshot within the horizon of the features\u2019 date, and nothing outside it', () => {
    const outcomes = [
      { date: '2026-10-01', churned: true },
      { date: '2026-11-01', churned: false },
      { date: '2026-12-01', churned: true },
    ];
    expect(churnOutcomeFor(outcomes, '2026-11-01', 35)).toBe(false);
    expect(churnOutcomeFor(outcomes, '2026-11-02', 35)).toBe(true);
    expect(churnOutcomeFor(outcomes, '2026-11-02', 20)).toBeNull();
    expect(churnOutcomeFor(undefined, '2026-11-02', 35)).toBeNull();
  });

  it('counts a customer once per version and date (the latest answer), keeps shadow answers apart and groups by ISO week', () => {
    const records = [
      record({ customer_id: 'a', churn_probability: 0.9, t: '2026-11-20T10:00:00.000Z' }),
      record({ customer_id: 'a', churn_probability: 0.1, t: '2026-11-21T10:00:00.000Z' }),
      record({ customer_id: 'b', churn_probability: 0.8, t: '2026-11-23T10:00:00.000Z' }),
      record({ customer_id: 'c', churn_probability: 0.2, t: '2026-11-23T10:00:00.000Z' }),
      record({ customer_id: 'd', churn_probability: 0.7, t: '2026-11-23T10:00:00.000Z' }),
      record({ customer_id: 'a', churn_probability: 0.6, version: 2, alias: 'staging', shadow: true }),
    ];
    const outcomes = new Map([
      ['a', [{ date: '2026-11-01', churned: true }]],
      ['b', [{ date: '2026-11-01', churned: true }]],
      ['c', [{ date: '2026-11-01', churned: false }]],
    ]);

    const report = churnQualityReport(records, outcomes, { horizonDays: 35, since: null, computedAt: '2026-12-05T00:00:00Z', range: null });

    const served = report.versions.find((v) => !v.shadow)!;
    expect(served.overall).toMatchObject({ predictions: 4, matched: 3 });
    // a's latest answer (0.1) is what counts: it churned, so the ranking is imperfect.
    expect(served.overall.quality!.auc).toBeCloseTo(0.5, 6);
    expect(served.weeks.map((w) => [w.period, w.predictions])).toEqual([['2026-W47', 1], ['2026-W48', 3]]);
    expect(report.versions.find((v) => v.shadow)).toMatchObject({ version: 2, aliases: ['staging'], overall: { predictions: 1, matched: 1 } });
    expect(isoWeek('2021-01-03T12:00:00Z')).toBe('2020-W53');
  });

  it('compares recommended offers with the others among the offers actually made', () => {
    const nbo = (id: string, offer: string) => record({ customer_id: id, model: 'nbo', churn_probability: undefined, offer_id: offer });
    const records = [nbo('a', 'vip_upgrade'), nbo('b', 'vip_upgrade'), nbo('c', 'free_shipping')];
    const outcomes = new Map([
      ['a', [{ offeredAt: '2026-11-05', offerId: 'vip_upgrade', accepted: true }]],
      ['b', [{ offeredAt: '2026-11-05', offerId: 'free_shipping', accepted: false }, { offeredAt: '2026-11-09', offerId: 'welcome_bundle', accepted: true }]],
      ['c', [{ offeredAt: '2027-01-05', offerId: 'free_shipping', accepted: true }]],
    ]);

    const report = nboQualityReport(records, outcomes, { horizonDays: 35, since: null, computedAt: '2026-12-05T00:00:00Z', range: null });

    expect(report.versions[0]!.overall).toMatchObject({
      predictions: 3,
      matched: 2,
      quality: { recommended: { offers: 1, accepted: 1, rate: 1 }, other: { offers: 2, accepted: 1, rate: 0.5 }, lift: 2 },
    });
  });

  it('judges NBO by what happened to each offer actually sent, against the probability the model gave that offer', () => {
    const probabilities = (p: Record<string, number>) => record({ customer_id: '', model: 'nbo', churn_probability: undefined, offer_id: 'vip_upgrade', offer_probabilities: p });
    const records = [
      { ...probabilities({ vip_upgrade: 0.9, free_shipping: 0.2, welcome_bundle: 0.7 }), customer_id: 'a' },
      { ...probabilities({ vip_upgrade: 0.8, free_shipping: 0.1, welcome_bundle: 0.3 }), customer_id: 'b' },
      { ...probabilities({ vip_upgrade: 0.6, free_shipping: 0.4, welcome_bundle: 0.5 }), customer_id: 'c' },
    ];
    const outcomes = new Map([
      ['a', [{ offeredAt: '2026-11-05', offerId: 'vip_upgrade', accepted: true }]],
      ['b', [{ offeredAt: '2026-11-05', offerId: 'free_shipping', accepted: false }, { offeredAt: '2026-11-09', offerId: 'welcome_bundle', accepted: true }]],
      ['c', [{ offeredAt: '2026-11-07', offerId: 'free_shipping', accepted: false }]],
    ]);

    const made = nboQualityReport(records, outcomes, { horizonDays: 35, since: null, computedAt: '2026-12-05T00:00:00Z', range: null }).versions[0]!.overall.quality!.offers_made!;

    // Four offers made: P 0.9 (accepted), 0.1 (refused), 0.3 (accepted), 0.4 (refused).
    expect(made).toMatchObject({ offers: 4, accepted: 2, observed_rate: 0.5, mean_predicted: 0.425 });
    expect(made.auc).toBeCloseTo(0.75, 6);
  });

  it('compares two NBO versions on the same offers made, each by its probability for the offer sent', () => {
    const side = (id: string, version: number, alias: string, p: number) =>
      record({ customer_id: id, model: 'nbo', churn_probability: undefined, version, alias, shadow: alias === 'staging', offer_id: 'vip_upgrade', offer_probabilities: { vip_upgrade: p, free_shipping: 1 - p } });
    const records: PredictionRecord[] = [];
    const outcomes = new Map<string, { offeredAt: string; offerId: string; accepted: boolean }[]>();
    const rng = new Rng(4);
    for (let i = 0; i < 400; i++) {
      const accepted = rng.next() < 0.5;
      // The challenger knows who accepts; the champion guesses.
      records.push(side(`c${i}`, 1, 'production', rng.next()), side(`c${i}`, 2, 'staging', accepted ? 0.6 + 0.3 * rng.next() : 0.1 + 0.3 * rng.next()));
      outcomes.set(`c${i}`, [{ offeredAt: '2026-11-05', offerId: 'vip_upgrade', accepted }]);
    }

    const result = compareModels('nbo', records, { offers: outcomes }, { a: { alias: 'production' }, b: { alias: 'staging' }, aLabel: 'production', bLabel: 'staging' }, { horizonDays: 35 });

    expect(result).toMatchObject({ model: 'nbo', customers: 400, winner: 'b', a: { versions: [1] }, b: { versions: [2] } });
    expect(result.b.auc).toBe(1);
    expect(result.verdict).toMatch(/^staging wins: realised AUC of P\(accept\) of the offers made 1 against 0\.\d+/);
  });

  it('compares two sides only on customers both predicted, and says when there is too little to tell', () => {
    const records = [record({ customer_id: 'a' }), record({ customer_id: 'a', version: 2, alias: 'staging', shadow: true }), record({ customer_id: 'b' })];
    const outcomes = new Map([['a', [{ date: '2026-11-01', churned: true }]], ['b', [{ date: '2026-11-01', churned: false }]]]);
    const result = compareChurn(records, outcomes, { a: { alias: 'production' }, b: { alias: 'staging' }, aLabel: 'production', bLabel: 'staging' }, { horizonDays: 35 });
    expect(result).toMatchObject({ customers: 1, winner: null, p_value: null });
    expect(result.verdict).toMatch(/Not enough realised outcomes/);
  });
});

describe('the prediction log', () => {
  const ids = (n: number) => Array.from({ length: n }, (_, i) => `c${i + 1}`);
  const features = () => new MemoryFeatures(new Map(ids(20).map((id, i) => [id, customerFeatures(i + 1)])));

  async function servedRegistry(withChallenger: boolean) {
    const registry = new ModelRegistry(tempFsStore(), { actor: 'test' });
    await publishTiny(registry, 'churn', 'production');
    await publishTiny(registry, 'nbo', 'production');
    if (withChallenger) await publishTiny(registry, 'churn', 'staging', { seed: 9 });
    return registry;
  }

  it('records every answer of a batch once the answer is built, and the challenger beside it in shadow', async () => {
    const results = tempFsStore();
    const app = await testApp({ features: features(), registry: await servedRegistry(true), results, env: { SHADOW_SAMPLE_RATE: '1' } });

    const outcome = await app.predictions.predict({ customerIds: ids(20), type: 'all', batch: true, deadlineMs: 5000, requestId: 'req-1' });

    const logged = (await readPredictionLog(results, { models: ['churn', 'nbo'] })).records;
    // One model asked for: only its lines (the RFM lines of the same file are skipped).
    expect(new Set((await readPredictionLog(results, { models: ['nbo'] })).records.map((r) => r.model))).toEqual(new Set(['nbo']));
    const served = logged.filter((r) => !r.shadow);
    expect(served).toHaveLength(40);
    const answer = outcome.results[3]!.result as { churn: { churn_probability: number }; nbo: { offer_id: string } };
    const churn = served.find((r) => r.model === 'churn' && r.customer_id === 'c4')!;
    expect(churn).toMatchObject({ version: 1, alias: 'production', origin: 'req:req-1', churn_probability: answer.churn.churn_probability });
    expect(served.find((r) => r.model === 'nbo' && r.customer_id === 'c4')).toMatchObject({ offer_id: answer.nbo.offer_id });
    const shadow = logged.filter((r) => r.shadow);
    expect(shadow).toHaveLength(20);
    expect(shadow.every((r) => r.model === 'churn' && r.version === 2 && r.alias === 'staging')).toBe(true);
    // The challenger's answers never reach the caller.
    expect(JSON.stringify(outcome.results)).not.toContain('staging');
    const { keys } = await results.list('predictions/', {});
    expect(keys).toHaveLength(1);
    expect(decodeRecords((await results.get(keys[0]!))!.body)).toHaveLength(80);
  });

  it('reads a segment chunk\'s columnar file as the same records a batch\'s JSON lines give, challenger included', async () => {
    const results = tempFsStore();
    const app = await testApp({ features: features(), registry: await servedRegistry(true), results, env: { SHADOW_SAMPLE_RATE: '1' } });
    // The same 20 customers as a batch (JSON lines) and as a segment chunk (columns).
    await app.predictions.predict({ customerIds: ids(20), type: 'all', batch: true, deadlineMs: 5000, requestId: 'req-1' });
    const inline = toInline({ ids: ids(20), features: Float64Array.from(ids(20).flatMap((_, i) => customerFeatures(i + 1).map((v) => v ?? NaN))), found: new Uint8Array(20).fill(1), asOf: ids(20).map(() => '2026-01-01') });
    await app.chunks.score({ run_id: '20260101T000000000Z-abcdef', segment_id: 'all', chunk: 1, types: ['churn', 'nbo', 'rfm'], rfm_quintiles: { ...PROFILE.quintiles, customers: PROFILE.customers }, customers: { inline } });

    const { records } = await readPredictionLog(results, { models: ['churn', 'nbo', 'rfm'] });
    const fromLines = records.filter((r) => r.origin === 'req:req-1');
    const fromColumns = records.filter((r) => r.origin === 'run:all/20260101T000000000Z-abcdef');
    expect(fromColumns).toHaveLength(fromLines.length);
    expect(fromColumns.filter((r) => r.shadow)).toHaveLength(20);
    const key = (r: PredictionRecord) => `${r.customer_id}/${r.model}/${r.shadow}`;
    const strip = ({ t: _t, origin: _o, as_of: _a, warnings: _w, ...rest }: PredictionRecord) => rest;
    const lines = new Map(fromLines.map((r) => [key(r), strip(r)]));
    for (const r of fromColumns) expect(strip(r), key(r)).toEqual(lines.get(key(r)));
    expect(fromColumns.every((r) => r.as_of === '2026-01-01')).toBe(true);

    // A file in the earlier layout (a float64 column per offer, not one list of micro-units) reads the same.
    const file = (await results.list('predictions/')).keys.find((k) => k.endsWith('.arrow'))!;
    const body = (await results.get(file))!.body;
    const table = tableFromIPC(body);
    const earlier: Record<string, Vector> = {};
    for (const { name } of table.schema.fields) {
      const set = /^s(\d+)_p_micro$/.exec(name)?.[1];
      if (set === undefined) earlier[name] = table.getChild(name)!;
      else {
        const rows = table.getChild(name)!.toArray() as Vector[];
        for (let c = 0; c < 8; c++) earlier[`s${set}_p${c}`] = makeVector(Float64Array.from(rows, (row) => (row.get(c) as number) / 1e6));
      }
    }
    const rewritten = new Table(earlier);
    rewritten.schema.metadata.set('loyalty-ml', table.schema.metadata.get('loyalty-ml')!);
    expect(Object.keys(earlier).filter((c) => /^s0_p\d$/.test(c))).toHaveLength(8);
    expect(decodeRecords(tableToIPC(rewritten, 'stream'))).toEqual(decodeRecords(body));
  });

  it('leaves every answer unchanged when the log cannot be written, after trying again', async () => {
    const registry = await servedRegistry(false);
    const healthy = await testApp({ features: features(), registry });
    const broken = new FaultyStore(tempFsStore(), () => new Error('S3 is down'));
    let attempts = 0;
    broken.failPut = (key) => key.startsWith('predictions/') && ++attempts > 0;
    const failing = await testApp({ features: features(), registry, results: broken });

    const expected = await healthy.predictions.predict({ customerIds: ids(20), type: 'all', batch: true, deadlineMs: 5000 });
    const actual = await failing.predictions.predict({ customerIds: ids(20), type: 'all', batch: true, deadlineMs: 5000 });

    expect(actual.results).toEqual(expected.results);
    expect(actual.errors).toEqual(expected.errors);
    expect(actual.warnings).toEqual(expected.warnings);
    expect(attempts).toBe(3);
    expect((await broken.list('predictions/')).keys).toEqual([]);
  });

  it('reads at most MONITOR_MAX_FILES_PER_DAY files of a busy day, evenly spaced, and says how many of how many', async () => {
    const results = tempFsStore();
    const app = await testApp({ features: features(), registry: await servedRegistry(false), results });
    for (let i = 0; i < 5; i++) await app.predictions.predict({ customerIds: ids(4), type: 'churn', batch: true, deadlineMs: 5000 });

    const sampled = await readPredictionLog(results, { models: ['churn'], maxFilesPerDay: 2 });
    const whole = await readPredictionLog(results, { models: ['churn'] });

    expect(sampled.files).toEqual({ read: 2, total: 5 });
    expect(sampled.records).toHaveLength(8);
    expect(whole).toMatchObject({ files: { read: 5, total: 5 }, records: expect.any(Array) });
    expect(whole.records).toHaveLength(20);
  });

  it('samples single answers by PREDICTION_LOG_SINGLE_SAMPLE and writes nothing when the log is off', async () => {
    const registry = await servedRegistry(false);
    const none = tempFsStore();
    const sampledOut = await testApp({ features: features(), registry, results: none, env: { PREDICTION_LOG_SINGLE_SAMPLE: '0' } });
    await sampledOut.predictions.predict({ customerIds: ['c1'], type: 'churn', batch: false, deadlineMs: 5000 });
    await sampledOut.predictions.predict({ customerIds: ['c1', 'c2'], type: 'churn', batch: true, deadlineMs: 5000 });
    expect((await none.list('predictions/')).keys).toHaveLength(1);

    const off = tempFsStore();
    const disabled = await testApp({ features: features(), registry, results: off, env: { PREDICTION_LOG: 'off' } });
    await disabled.predictions.predict({ customerIds: ['c1', 'c2'], type: 'churn', batch: true, deadlineMs: 5000 });
    expect((await off.list('predictions/')).keys).toEqual([]);
  });
});
