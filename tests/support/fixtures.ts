import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Real material nobody here wrote (foreign ONNX models, the CDNOW purchase log), copied into the repository. */
export const FIXTURES_DIR = resolve(import.meta.dirname, '../fixtures');

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
