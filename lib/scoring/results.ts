import { OFFER_NAMES } from '../catalog';
import type { Reasons } from '../explain/reasons';
import type { RfmScores } from './rfm';

/**
 * What an NBO answer's probabilities are: `acceptance`, P(the customer accepts the offer if it is
 * sent), one per offer and independent (they do not sum to 1); `softmax`, one distribution over the
 * offers (versions trained before acceptance models, or published so), which ranks offers but is
 * not an acceptance rate.
 */
export type OfferProbabilities = 'acceptance' | 'softmax';

/** Where an answer came from: a registry version, the RFM rules, or the mock baseline. */
export type ResultSource =
  | { type: 'model'; name: string; version: number; alias: string; probabilities?: OfferProbabilities }
  | { type: 'rules'; name: 'rfm'; cut_points: 'quintiles' | 'fixed' }
  | { type: 'mock'; name: string; probabilities?: OfferProbabilities };

/** Churn risk bands, lowest first (columnar scores store the index). */
export const RISK_BANDS = ['low', 'medium', 'high'] as const;
export type ChurnRisk = (typeof RISK_BANDS)[number];

export interface ChurnResult {
  customer_id: string;
  churn_probability: number;
  churn_risk: ChurnRisk;
  source: ResultSource;
  /** With explain: true, why (null when the version has none; a warning says why). */
  reasons?: Reasons | null;
}

export interface RankedOffer {
  rank: number;
  offer_id: string;
  offer_name: string;
  probability: number;
}

export interface NboResult {
  customer_id: string;
  offer_id: string;
  offer_name: string;
  confidence: number;
  offers: RankedOffer[];
  source: ResultSource;
  /** With explain: true, why the top offer's probability is what it is (null when unavailable). */
  reasons?: Reasons | null;
}

export interface RfmResult extends RfmScores {
  customer_id: string;
  source: ResultSource;
}

export interface AllResult {
  customer_id: string;
  churn: ChurnResult;
  nbo: NboResult;
  rfm: RfmResult;
}

export type PredictionType = 'churn' | 'nbo' | 'rfm' | 'all';
export type CustomerResult = ChurnResult | NboResult | RfmResult | AllResult;


export function churnRisk(p: number, thresholds: [number, number]): ChurnRisk {
  return p >= thresholds[1] ? 'high' : p >= thresholds[0] ? 'medium' : 'low';
}

/**
 * Ranks offers by probability (ties by catalog order) and names them from the catalog, for a whole
 * batch from one probability matrix [customers][offers]. The ranking of each
 * customer's offers is kept as indices into the batch's matrix, and the 8 ranked offer objects are
 * built only when a caller reads `offers` or the answer is serialised: segment workers need only
 * the top offer, and a batch of 10,000 would otherwise allocate 80,000 objects that live through
 * garbage collection.
 */
export function nboResults(customerIds: string[], offerIds: readonly string[], P: ArrayLike<number>, source: ResultSource, reasons?: (Reasons | null)[]): NboResult[] {
  const k = offerIds.length;
  const batch: NboBatch = { offerIds, names: offerIds.map((id) => OFFER_NAMES.get(id) ?? id), P, order: new Uint8Array(customerIds.length * k), k };
  const out = new Array<NboResult>(customerIds.length);
  const order = batch.order;
  for (let r = 0; r < customerIds.length; r++) {
    const base = r * k;
    // Insertion sort of k (8) indices by probability, descending; ties keep catalog order.
    for (let c = 0; c < k; c++) {
      let j = c;
      const p = P[base + c]!;
      while (j > 0 && P[base + order[base + j - 1]!]! < p) {
        order[base + j] = order[base + j - 1]!;
        j--;
      }
      order[base + j] = c;
    }
    out[r] = new NboAnswer(customerIds[r]!, batch, r, source);
    if (reasons) out[r]!.reasons = reasons[r]!;
  }
  return out;
}

interface NboBatch {
  offerIds: readonly string[];
  names: string[];
  P: ArrayLike<number>;
  /** Per customer, offer indices best first. */
  order: Uint8Array;
  k: number;
  /** `"offer_id":` per offer, built once per batch for the prediction log. */
  jsonKeys?: string[];
}

class NboAnswer implements NboResult {
  readonly offer_id: string;
  readonly offer_name: string;
  readonly confidence: number;
  reasons?: Reasons | null;
  // Private fields: spreading or inspecting an answer never exposes the batch behind it.
  readonly #batch: NboBatch;
  readonly #row: number;
  #ranked: RankedOffer[] | undefined;

  constructor(
    readonly customer_id: string,
    batch: NboBatch,
    row: number,
    readonly source: ResultSource,
  ) {
    this.#batch = batch;
    this.#row = row;
    const top = batch.order[row * batch.k]!;
    this.offer_id = batch.offerIds[top]!;
    this.offer_name = batch.names[top]!;
    this.confidence = round(batch.P[row * batch.k + top]!);
  }

  get offers(): RankedOffer[] {
    if (!this.#ranked) {
      const { k, order, offerIds, names, P } = this.#batch;
      const base = this.#row * k;
      this.#ranked = Array.from({ length: k }, (_, rank) => {
        const c = order[base + rank]!;
        return { rank: rank + 1, offer_id: offerIds[c]!, offer_name: names[c]!, probability: round(P[base + c]!) };
      });
    }
    return this.#ranked;
  }

  /** Every offer's probability as a JSON object keyed by offer id, in the model's class order. */
  probabilitiesJson(): string {
    const { k, P } = this.#batch;
    const keys = (this.#batch.jsonKeys ??= this.#batch.offerIds.map((id) => `${JSON.stringify(id)}:`));
    const base = this.#row * k;
    let out = '{';
    for (let c = 0; c < k; c++) out += `${c ? ',' : ''}${keys[c]}${round(P[base + c]!)}`;
    return `${out}}`;
  }

  toJSON(): NboResult {
    const plain: NboResult = { customer_id: this.customer_id, offer_id: this.offer_id, offer_name: this.offer_name, confidence: this.confidence, offers: this.offers, source: this.source };
    if (this.reasons !== undefined) plain.reasons = this.reasons;
    return plain;
  }
}

/** The sources of one customer's answer (three for type "all"). */
export function sourcesOf(result: CustomerResult): ResultSource[] {
  if ('source' in result) return [result.source];
  return [result.churn?.source, result.nbo?.source, result.rfm?.source].filter((s): s is ResultSource => s !== undefined);
}

/** Every offer's probability of an NBO answer as a JSON object keyed by offer id (the prediction log's field). */
export function offerProbabilitiesJson(result: NboResult): string {
  if (result instanceof NboAnswer) return result.probabilitiesJson();
  return JSON.stringify(Object.fromEntries(result.offers.map((o) => [o.offer_id, o.probability])));
}

/** A result as a plain object (answers that build parts lazily expose them through toJSON). */
export function plainResult<T extends object>(result: T): T {
  const withJson = result as T & { toJSON?: () => T };
  return typeof withJson.toJSON === 'function' ? withJson.toJSON() : result;
}

/** A probability as answers carry it (six decimals). */
export function round(v: number): number {
  return Math.round(v * 1e6) / 1e6;
}
