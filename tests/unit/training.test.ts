import { describe, expect, it } from 'vitest';
import { parseCsv } from '../../lib/csv';
import { encodedNames, encodeRecords } from '../../lib/inference/encoding';
import { Rng } from '../../lib/random';
import { inferEncodings, positiveLabel } from '../../lib/training/csv';
import { stratifiedSplit } from '../../lib/training/datasets';
import { rocAuc } from '../../lib/metrics';
import { initNet, predict, train } from '../../lib/training/nn';
import { fitPreprocessor, transform } from '../../lib/training/preprocess';

describe('preprocessing fitted on training rows', () => {
  it('imputes medians, flags missing values, logs skewed columns and standardises', () => {
    // Column 0 has a gap; column 1 is heavily skewed and non-negative; column 2 is plain.
    const rows = [
      [1, 1, -1],
      [NaN, 2, 0],
      [3, 3, 1],
      [5, 1000, 0],
      [7, 5, 0],
    ];
    const X = Float64Array.from(rows.flat());
    const pp = fitPreprocessor(X, 5, 3, ['a', 'b', 'c']);

    expect(pp.fill).toEqual([5, 3, 0]); // medians of [1,3,5,7] (upper middle), [1,2,3,5,1000], [-1,0,0,0,1]
    expect(pp.indicatorColumns).toEqual([0]);
    expect(pp.logColumns).toEqual([1]);
    const T = transform(pp, X, 5);
    const width = 4;
    for (let j = 0; j < width; j++) {
      const mean = [0, 1, 2, 3, 4].reduce((s, r) => s + T[r * width + j]!, 0) / 5;
      expect(mean).toBeCloseTo(0, 12);
    }
    // The missing value's row carries indicator 1 (standardised: the largest value in its column).
    const indicator = [0, 1, 2, 3, 4].map((r) => T[r * width + 3]!);
    expect(indicator.indexOf(Math.max(...indicator))).toBe(1);
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

  it('infers yes/no, one-hot and numeric columns and leaves identifiers out', () => {
    const { encodings, skipped } = inferEncodings(csv, { label: 'Churn', idColumn: 'customerID' });
    expect(encodings.map((e) => [e.column, e.kind])).toEqual([
      ['plan', 'one_hot'],
      ['autopay', 'boolean'],
      ['tenure', 'numeric'],
      ['charges', 'one_hot'], // "1,020.5" is not a number: text with few values
      ['notes', 'one_hot'],
    ]);
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
    expect(encodings.map((e) => [e.column, e.kind])).toEqual([['state', 'one_hot']]);
    expect(skipped).toEqual([{ column: 'name', reason: 'free text (500 distinct values)' }]);
  });
});
