import { readFileSync } from 'node:fs';
import { z } from 'zod';
import defaults from '../../models/warehouse.json';
import { FEATURES } from '../catalog';
import { ConfigError } from '../errors';


const ident = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a plain SQL identifier');

export const WarehouseConfigSchema = z.object({
  schema: ident.nullable(),
  customer_features: z.object({ table: ident, customer_id: ident, updated_at: ident }),
  features: z.record(z.string(), ident),
  segments: z.object({ table: ident, segment_id: ident, name: ident, description: ident }),
  segment_members: z.object({ table: ident, segment_id: ident, customer_id: ident }),
  churn_history: z.object({ table: ident, customer_id: ident, snapshot_date: ident, churned: ident }),
  offer_history: z.object({
    table: ident,
    customer_id: ident,
    offered_at: ident,
    offer_id: ident,
    accepted: ident,
    /** The logging policy's chance of choosing the offer sent, where the programme logs it; null (or absent): estimated from the history. */
    propensity: ident.nullable().optional(),
  }),
});

export type WarehouseConfig = z.infer<typeof WarehouseConfigSchema>;

/** Reads the table/column mapping (the bundled default, or a JSON file), checking every name. */
export function loadWarehouseConfig(path?: string): WarehouseConfig {
  let raw: unknown = defaults;
  if (path) {
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      throw new ConfigError(`WAREHOUSE_CONFIG: cannot read ${path}: ${(error as Error).message}`, { cause: error });
    }
  }
  const parsed = WarehouseConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`WAREHOUSE_CONFIG: ${issue.path.join('.')} ${issue.message}`);
  }
  const missing = FEATURES.filter((f) => !(f in parsed.data.features));
  if (missing.length) throw new ConfigError(`WAREHOUSE_CONFIG: features has no column for ${missing.join(', ')}`);
  return parsed.data;
}

/** Double-quotes an identifier that the config schema has already restricted to [A-Za-z0-9_]. */
export function q(name: string): string {
  return `"${name}"`;
}

/** A schema-qualified, quoted table name. */
export function table(cfg: WarehouseConfig, name: string): string {
  return cfg.schema ? `${q(cfg.schema)}.${q(name)}` : q(name);
}

/**
 * DDL for the tables loyalty-ml reads, in SQL that PostgreSQL and Amazon Redshift both accept.
 * Used for the embedded warehouse, demo data and tests; a real warehouse already has its tables.
 */
export function createTablesSql(cfg: WarehouseConfig): string[] {
  const featureCols = FEATURES.map((f) => `${q(cfg.features[f]!)} DOUBLE PRECISION`).join(',\n  ');
  const cf = cfg.customer_features;
  const ch = cfg.churn_history;
  const oh = cfg.offer_history;
  const sg = cfg.segments;
  const sm = cfg.segment_members;
  return [
    ...(cfg.schema ? [`CREATE SCHEMA IF NOT EXISTS ${q(cfg.schema)}`] : []),
    `CREATE TABLE IF NOT EXISTS ${table(cfg, cf.table)} (
  ${q(cf.customer_id)} VARCHAR(64) NOT NULL PRIMARY KEY,
  ${featureCols},
  ${q(cf.updated_at)} TIMESTAMP
)`,
    `CREATE TABLE IF NOT EXISTS ${table(cfg, sg.table)} (
  ${q(sg.segment_id)} VARCHAR(64) NOT NULL PRIMARY KEY,
  ${q(sg.name)} VARCHAR(256) NOT NULL,
  ${q(sg.description)} VARCHAR(1024)
)`,
    `CREATE TABLE IF NOT EXISTS ${table(cfg, sm.table)} (
  ${q(sm.segment_id)} VARCHAR(64) NOT NULL,
  ${q(sm.customer_id)} VARCHAR(64) NOT NULL,
  PRIMARY KEY (${q(sm.segment_id)}, ${q(sm.customer_id)})
)`,
    `CREATE TABLE IF NOT EXISTS ${table(cfg, ch.table)} (
  ${q(ch.customer_id)} VARCHAR(64) NOT NULL,
  ${q(ch.snapshot_date)} DATE NOT NULL,
  ${featureCols},
  ${q(ch.churned)} BOOLEAN NOT NULL
)`,
    `CREATE TABLE IF NOT EXISTS ${table(cfg, oh.table)} (
  ${q(oh.customer_id)} VARCHAR(64) NOT NULL,
  ${q(oh.offered_at)} TIMESTAMP NOT NULL,
  ${featureCols},
  ${q(oh.offer_id)} VARCHAR(64) NOT NULL,
  ${q(oh.accepted)} BOOLEAN NOT NULL${oh.propensity ? `,
  ${q(oh.propensity)} DOUBLE PRECISION` : ''}
)`,
  ];
}

/** Statements that empty every loyalty-ml table (demo data reloads start from nothing). */
export function truncateTablesSql(cfg: WarehouseConfig): string[] {
  return [cfg.offer_history.table, cfg.churn_history.table, cfg.segment_members.table, cfg.segments.table, cfg.customer_features.table].map(
    (t) => `DELETE FROM ${table(cfg, t)}`,
  );
}
