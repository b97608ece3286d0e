import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The shared fixtures folder (beside the repository), or LOYALTY_FIXTURES_DIR. */
export const FIXTURES_DIR = process.env.LOYALTY_FIXTURES_DIR ?? resolve(import.meta.dirname, '../../../shared/fixtures');

export interface TensorVector {
  type: string;
  dims: number[];
  data: unknown[];
}

export interface OnnxFixture {
  name: string;
  dir: string;
  bytes: Uint8Array;
  vectors: {
    inputs: Record<string, TensorVector>;
    expected: Record<string, TensorVector>;
    float_tolerance: number;
    raw_features?: { columns: string[] };
  };
}

export function onnxFixtures(): OnnxFixture[] {
  const base = join(FIXTURES_DIR, 'onnx');
  return readdirSync(base, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => onnxFixture(d.name));
}

export function onnxFixture(name: string): OnnxFixture {
  const dir = join(FIXTURES_DIR, 'onnx', name);
  return {
    name,
    dir,
    bytes: new Uint8Array(readFileSync(join(dir, 'model.onnx'))),
    vectors: JSON.parse(readFileSync(join(dir, 'test_vectors.json'), 'utf8')),
  };
}
