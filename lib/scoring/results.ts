import offerCatalog from '../../models/offers.json';
import type { RfmScores } from './rfm';

/** Where an answer came from: a registry version, the RFM rules, or the mock baseline. */
export type ResultSource =
  | { type: 'model'; name: string; version: number; alias: string }
  | { type: 'rules'; name: 'rfm'; cut_points: 'quintiles' | 'fixed' }
  | { type: 'mock'; name: string };

export type ChurnRisk = 'low' | 'medium' | 'high';

export interface ChurnResult {
  customer_id: string;
  churn_probability: number;
  churn_risk: ChurnRisk;
  source: ResultSource;
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

const OFFER_NAMES = new Map(offerCatalog.offers.map((o) => [o.id, o.name]));

export function churnRisk(p: number, thresholds: [number, number]): ChurnRisk {
  return p >= thresholds[1] ? 'high' : p >= thresholds[0] ? 'medium' : 'low';
}

export function churnResult(customerId: string, p: number, thresholds: [number, number], source: ResultSource): ChurnResult {
  const rounded = round(p);
  return { customer_id: customerId, churn_probability: rounded, churn_risk: churnRisk(p, thresholds), source };
}

/** Ranks offers by probability (ties by catalog order) and names them from the catalog. */
export function nboResult(customerId: string, offerIds: string[], probabilities: ArrayLike<number>, source: ResultSource): NboResult {
  const ranked = offerIds
    .map((id, i) => ({ id, p: probabilities[i]!, i }))
    .sort((a, b) => b.p - a.p || a.i - b.i)
    .map((o, rank) => ({ rank: rank + 1, offer_id: o.id, offer_name: OFFER_NAMES.get(o.id) ?? o.id, probability: round(o.p) }));
  const top = ranked[0]!;
  return { customer_id: customerId, offer_id: top.offer_id, offer_name: top.offer_name, confidence: top.probability, offers: ranked, source };
}

function round(v: number): number {
  return Math.round(v * 1e6) / 1e6;
}
