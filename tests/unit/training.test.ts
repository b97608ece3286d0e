import { describe, expect, it } from 'vitest';
import { parseCsv } from '../../lib/csv';
import { encodedNames, encodeRecords } from '../../lib/inference/encoding';
import { Rng } from '../../lib/random';
import { inferEncodings, orderedCodes, positiveLabel } from '../../lib/training/csv';
import { stratifiedSplit } from '../../lib/training/datasets';
import { rocAuc } from '../../lib/metrics';
import { initNet, predict, train } from '../../lib/training/nn';
import { buildDesign, designNames, designWidth, fitDesign, type InputColumn } from '../../lib/training/design';
import { exportNet, netProbabilities, toFloat32, verifyExport, type NetModel } from '../../lib/training/export';
import { fitLinear } from '../../lib/training/linear';
import { ModelRegistry } from '../../lib/registry/index';
import { evaluateVersion } from '../../lib/training/evaluate';
import { publishTiny } from '../support/models';
import { tempFsStore } from '../support/registry';

describe('the design of the linear and network families, fitted on training rows', () => {
  const columns: InputColumn[] = [
    { name: 'visits', kind: 'numeric' },
    { name: 'spend', kind: 'numeric' },
    { name: 'opt_in', kind: 'boolean' },
    { name: 'plan', kind: 'categorical', categories: ['basic', 'plus', 'premium'], ordered: false },
  ];
  const rng = new Rng(5);
  const rows = 400;
  const X = new Float64Array(rows * 4);
  const y = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    X[r * 4] = r % 10 === 0 ? NaN : Math.floor(rng.next() * 10);
    X[r * 4 + 1] = Math.exp(rng.normal() * 2);
    X[r * 4 + 2] = rng.next() < 0.5 ? 1 : 0;
    X[r * 4 + 3] = r % 3;
    y[r] = rng.next() < (X[r * 4 + 3] === 2 ? 0.85 : 0.1) ? 1 : 0;
  }
  const all = Uint32Array.from({ length: rows }, (_, i) => i);

  it('imputes, flags missing values, standardises numbers, adds hinge terms, and leaves 0/1 and one-hot columns unscaled', () => {
    const { design, Z } = fitDesign(columns, X, all, y, { knots: 3, log: false, categorical: { plan: 'one_hot' } }, 1);
    const width = designWidth(design);
    const names = designNames(design);
    expect(names.slice(0, 4)).toEqual(['visits', 'spend', 'opt_in', 'visits:missing']);
    expect(names.filter((n) => n.startsWith('visits:over_'))).toHaveLength(3);
    expect(names.slice(-3)).toEqual(['plan=0', 'plan=1', 'plan=2']);
    const col = (name: string) => Array.from({ length: rows }, (_, r) => Z[r * width + names.indexOf(name)]!);
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    expect(mean(col('visits'))).toBeCloseTo(0, 6);
    expect(new Set(col('opt_in'))).toEqual(new Set([0, 1]));
    expect(col('visits:missing').filter((v) => v === 1)).toHaveLength(rows / 10);
    expect(col('plan=2').filter((v) => v === 1)).toHaveLength(133);
    expect(col('plan=0').filter((v) => v !== 0 && v !== 1)).toEqual([]);
    // A hinge is zero below its knot and grows linearly above it.
    const hinge = names.find((n) => n.startsWith('visits:over_'))!;
    const knot = Number(hinge.split('_').pop());
    for (let r = 0; r < rows; r++) {
      const v = X[r * 4]!;
      if (!Number.isNaN(v) && v <= knot) expect(Z[r * width + names.indexOf(hinge)]).toBe(0);
    }
  });

  it('target-encodes a category out of fold for the training rows, and from all of them for new rows', () => {
    const { design, Z } = fitDesign(columns, X, all, y, { knots: 0, log: false, categorical: { plan: 'target' } }, 1);
    const width = designWidth(design);
    const at = designNames(design).indexOf('plan:target');
    // Plan 2 is mostly positive: its encoding is high, the others low, the unseen level at the prior.
    const values = design.categorical[0]!.values!;
    expect(values[2]).toBeGreaterThan(1);
    expect(values[0]).toBeLessThan(-0.5);
    expect(values[3]).toBe(0);
    // Out of fold: training rows of one level do not all share the full-data value.
    const trainValues = new Set(Array.from({ length: rows }, (_, r) => r).filter((r) => X[r * 4 + 3] === 2).map((r) => Z[r * width + at]));
    expect(trainValues.size).toBeGreaterThan(1);
    expect(trainValues.has(values[2])).toBe(false);
    expect(buildDesign(design, Float64Array.of(1, 1, 1, 2))[at]).toBe(values[2]);
  });

  it('gives the same matrix inside the exported graph as in the trainer', async () => {
    const { design } = fitDesign(columns, X, all, y, { knots: 3, log: true, categorical: { plan: 'one_hot' } }, 1);
    const model: NetModel = toFloat32({ kind: 'net', design, net: initNet(designWidth(design), [], 2, 3), classes: 2 });
    const check = Float64Array.from(X, Math.fround);
    const { maxAbsDiff } = await verifyExport(exportNet(model, { name: 't', producerVersion: 'test' }), check, rows, 4, netProbabilities(model, check, rows));
    expect(maxAbsDiff).toBeLessThan(1e-6);
  });
});

describe('logistic regression by L-BFGS', () => {
  it('recovers the coefficients of a logistic model and shrinks them as L2 grows', () => {
    const rng = new Rng(8);
    const rows = 20_000;
    const Z = new Float64Array(rows * 2);
    const y = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      Z[r * 2] = rng.normal();
      Z[r * 2 + 1] = rng.normal();
      y[r] = rng.next() < 1 / (1 + Math.exp(-(0.5 + 1.5 * Z[r * 2]! - 1 * Z[r * 2 + 1]!))) ? 1 : 0;
    }
    const fit = fitLinear({ Z, rows, width: 2, y }, 2, { l2: 0 });
    expect(fit.converged).toBe(true);
    expect(fit.W[0]).toBeCloseTo(1.5, 1);
    expect(fit.W[1]).toBeCloseTo(-1, 1);
    expect(fit.b[0]).toBeCloseTo(0.5, 1);
    const shrunk = fitLinear({ Z, rows, width: 2, y }, 2, { l2: 1 });
    expect(Math.abs(shrunk.W[0]!)).toBeLessThan(Math.abs(fit.W[0]!) / 2);
  });
});

describe('dense networks', () => {
  const circle = (n: number, seed: number) => {
    const rng = new Rng(seed);
    const X = new Float64Array(n * 2);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const a = rng.normal();
      const b = rng.normal();
      X[2 * i] = a;
      X[2 * i + 1] = b;
      y[i] = a * a + b * b < 1.2 ? 1 : 0;
    }
    return { X, y, rows: n, cols: 2 };
  };
  const options = { maxEpochs: 40, batchSize: 64, learningRate: 0.01, l2: 0, patience: 5, seed: 1 };

  it('learn a non-linear boundary that logistic regression cannot', () => {
    const data = circle(4000, 1);
    const validation = circle(1000, 2);
    const mlp = initNet(2, [32, 16], 2, 1);
    const logistic = initNet(2, [], 2, 1);
    train(mlp, data, validation, options);
    train(logistic, data, validation, options);

    const aucOf = (net: typeof mlp) => rocAuc(predict(net, validation.X, validation.rows), validation.y);
    expect(aucOf(mlp)).toBeGreaterThan(0.95);
    expect(aucOf(logistic)).toBeLessThan(0.65);
  });

  it('are deterministic for a seed', () => {
    const data = circle(500, 3);
    const validation = circle(200, 4);
    const a = initNet(2, [8], 2, 9);
    const b = initNet(2, [8], 2, 9);
    train(a, data, validation, { ...options, maxEpochs: 5 });
    train(b, data, validation, { ...options, maxEpochs: 5 });
    expect(a.layers.map((l) => Array.from(l.W))).toEqual(b.layers.map((l) => Array.from(l.W)));
  });

  it('give softmax probabilities that sum to 1', () => {
    const net = initNet(3, [4], 5, 2);
    const P = predict(net, Float64Array.from([0.1, -2, 3, 1, 1, 1]), 2);
    for (let r = 0; r < 2; r++) expect(P.slice(r * 5, r * 5 + 5).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 12);
  });
});

describe('CSV encoding', () => {
  const csv = parseCsv(
    [
      'customerID,plan,autopay,tenure,charges,notes,Churn',
      'c1,basic,Yes,12,"1,020.5",a,No',
      'c2,premium,No,3,,b,Yes',
      'c3,"plus, annual",yes,40,80.1,c,No',
      'c4,basic,NO,1, ,d,Yes',
    ].join('\r\n'),
  );

  it('parses quoted fields, commas inside quotes and CRLF', () => {
    expect(csv.columns).toEqual(['customerID', 'plan', 'autopay', 'tenure', 'charges', 'notes', 'Churn']);
    expect(csv.records[0]!.charges).toBe('1,020.5');
    expect(csv.records[2]!.plan).toBe('plus, annual');
  });

  it('infers yes/no, categorical and numeric columns and leaves identifiers out', () => {
    const { encodings, skipped } = inferEncodings(csv, { label: 'Churn', idColumn: 'customerID' });
    expect(encodings.map((e) => [e.column, e.kind])).toEqual([
      ['plan', 'ordinal'],
      ['autopay', 'boolean'],
      ['tenure', 'numeric'],
      ['charges', 'ordinal'], // "1,020.5" is not a number: text with few values
      ['notes', 'ordinal'],
    ]);
    expect(encodings[0]).toMatchObject({ categories: ['basic', 'plus, annual', 'premium'], ordered: false });
    expect(skipped).toEqual([]);
    expect(positiveLabel(csv, 'Churn')).toEqual({ positive: 'Yes', negative: 'No' });
  });

  it('encodes unseen categories as all zeros and missing numbers as NaN', () => {
    const encodings = [
      { column: 'plan', kind: 'one_hot' as const, categories: ['basic', 'premium'] },
      { column: 'autopay', kind: 'boolean' as const, true_values: ['yes'], false_values: ['no'] },
      { column: 'tenure', kind: 'numeric' as const },
    ];
    const X = encodeRecords(encodings, [
      { plan: 'enterprise', autopay: 'YES', tenure: 'NA' },
      { plan: 'premium', autopay: '', tenure: '7' },
    ]);
    expect(encodedNames(encodings)).toEqual(['plan=basic', 'plan=premium', 'autopay', 'tenure']);
    expect(Array.from(X)).toEqual([0, 0, 1, NaN, 0, 1, NaN, 7]);
  });
});

describe('ordered codes', () => {
  it('recognises coded bins and keeps their order, and leaves names and padded codes alone', () => {
    expect(orderedCodes(['25-34 years', '65+ years', '18-24 years', '35-44 years'])).toEqual(['18-24 years', '25-34 years', '35-44 years', '65+ years']);
    expect(orderedCodes(['11 - 20%', '0%', '1 - 10%', '51 - 100%'])).toEqual(['0%', '1 - 10%', '11 - 20%', '51 - 100%']);
    expect(orderedCodes(['level 3', 'level 1', 'level 2'])).toEqual(['level 1', 'level 2', 'level 3']);
    expect(orderedCodes(['1-2 years', 'more than 10 years', 'less than 1 year', '3-5 years'])).toEqual(['less than 1 year', '1-2 years', '3-5 years', 'more than 10 years']);
    expect(orderedCodes(['bronze', 'silver', 'gold'])).toBeNull();
    expect(orderedCodes(['S01', 'S02', 'S10'])).toBeNull();
  });

  it('marks a CSV column of coded bins as ordered, with its categories in order', () => {
    const bands = ['45-54 years', '18-24 years', '25-34 years'];
    const rows = Array.from({ length: 30 }, (_, i) => `${bands[i % 3]},${i % 2 ? 'yes' : 'no'}`);
    const { encodings } = inferEncodings(parseCsv(`age_band,label\n${rows.join('\n')}\n`), { label: 'label' });
    expect(encodings).toEqual([{ column: 'age_band', kind: 'ordinal', categories: ['18-24 years', '25-34 years', '45-54 years'], ordered: true }]);
  });
});

describe('stratifiedSplit', () => {
  it('keeps each class share in every part and uses every row once', () => {
    const y = Int32Array.from({ length: 1000 }, (_, i) => (i % 10 === 0 ? 1 : 0));
    const parts = stratifiedSplit(y, [0.7, 0.1, 0.2], 5);
    expect(parts.reduce((s, p) => s + p.length, 0)).toBe(1000);
    expect(new Set(parts.flatMap((p) => [...p])).size).toBe(1000);
    for (const p of parts) expect([...p].filter((i) => y[i] === 1).length / p.length).toBeCloseTo(0.1, 2);
  });
});

describe('CSV labels and categories', () => {
  it('infers the positive label through punctuation and case ("True." / "False.")', () => {
    const table = parseCsv('x,Churn\n1,False.\n2,True.\n3,False.\n');
    expect(positiveLabel(table, 'Churn')).toEqual({ positive: 'True.', negative: 'False.' });
  });

  it('treats a column of 51 US states as a category, and 500 names as free text', () => {
    const states = Array.from({ length: 51 }, (_, i) => `S${i}`);
    const rows = Array.from({ length: 1000 }, (_, i) => `${states[i % 51]},name${i % 500},${i % 2 ? 'yes' : 'no'}`);
    const { encodings, skipped } = inferEncodings(parseCsv(`state,name,label\n${rows.join('\n')}\n`), { label: 'label' });
    expect(encodings.map((e) => [e.column, e.kind])).toEqual([['state', 'ordinal']]);
    expect(skipped).toEqual([{ column: 'name', reason: 'free text (500 distinct values)' }]);
  });
});

describe('evaluating a version', () => {
  it('refuses data that lacks the features the model takes, instead of scoring it as missing', async () => {
    const registry = new ModelRegistry(tempFsStore(), { actor: 'test' });
    await publishTiny(registry, 'churn');
    const data = { records: [{ age: 3, churned: 1 }], y: Int32Array.of(1), description: 'people.csv (1 labelled rows)' };
    await expect(evaluateVersion(registry, 'churn', 1, data)).rejects.toThrow(
      /^churn v1 takes days_since_last_transaction, .*usage_trend, which people\.csv \(1 labelled rows\) does not have \(it has age, churned\)/,
    );
  });
});
