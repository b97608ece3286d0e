import { tempDir } from '../../devkit/temp';
import type { ManifestDraft } from '../../lib/registry/index';
import { externalLineage } from '../../lib/registry/index';
import { FsObjectStore } from '../../lib/storage/fs';
import type { ObjectStore, PutOptions } from '../../lib/storage/index';


export { tempDir };

export function tempFsStore(): FsObjectStore {
  return new FsObjectStore(tempDir());
}

/** A valid manifest draft for registry tests that do not care about the model's contents. */
export function draft(overrides: Partial<ManifestDraft> = {}): ManifestDraft {
  return {
    status: 'ready',
    refusal_reasons: [],
    model: { producer: 'test', opsets: [{ domain: '', version: 13 }], rewrites: [] },
    input: {
      tensors: [{ name: 'input', type: 'float32', shape: [null, 2] }],
      features: [
        // Two warehouse features, so a draft published as churn can be promoted.
        { name: 'days_since_last_transaction', type: 'float32', tensor: 'input', column: 0 },
        { name: 'transaction_count_90d', type: 'float32', tensor: 'input', column: 1 },
      ],
      preprocessing: { applied_in: 'graph', steps: [] },
    },
    output: {
      kind: 'binary',
      probability_tensor: 'p',
      probability_layout: 'positive_column',
      label_tensor: null,
      classes: ['0', '1'],
      positive_class: '1',
    },
    lineage: externalLineage('test'),
    metrics: null,
    holdout_fingerprint: null,
    gates: null,
    ...overrides,
  };
}

/**
 * Wraps a store and fails chosen operations, to test what the registry leaves behind when the
 * store breaks part-way. `failPut` decides per key whether a put throws.
 */
export class FaultyStore implements ObjectStore {
  failPut: (key: string, options?: PutOptions) => boolean = () => false;
  failGet: (key: string) => boolean = () => false;
  constructor(
    readonly inner: ObjectStore,
    private readonly makeError: () => Error,
  ) {}
  get location() {
    return this.inner.location;
  }
  async get(key: string) {
    if (this.failGet(key)) throw this.makeError();
    return this.inner.get(key);
  }
  async put(key: string, body: Uint8Array, options?: PutOptions) {
    if (this.failPut(key, options)) throw this.makeError();
    return this.inner.put(key, body, options);
  }
  list(prefix: string, options?: { delimiter?: string }) {
    return this.inner.list(prefix, options);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
  checkConditionalWrites(prefix: string) {
    return this.inner.checkConditionalWrites(prefix);
  }
}
