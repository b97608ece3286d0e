import { describe, expect, it } from 'vitest';
import featureCatalog from '../../models/features.json';
import offerCatalog from '../../models/offers.json';
import { FEATURE_INDEX, FEATURES, OFFER_IDS } from '../../lib/catalog';

describe('the catalog', () => {
  it('lists the features models/features.json describes, in the same order', () => {
    expect(featureCatalog.features.map((f) => f.name)).toEqual([...FEATURES]);
    expect(FEATURES.map((f) => FEATURE_INDEX[f])).toEqual(FEATURES.map((_, i) => i));
  });

  it('lists the 8 offers of models/offers.json in class order', () => {
    expect(OFFER_IDS).toEqual(offerCatalog.offers.map((o) => o.id));
    expect(OFFER_IDS).toHaveLength(8);
  });
});
