import { SERVED_MODELS, DEFAULTED_RECENCY } from '../catalog';
import { redactUrl, type Config } from '../config';
import { LoyaltyError } from '../errors';
import type { ModelRegistry } from '../registry/index';
import type { ObjectStore } from '../storage/index';
import type { WarehouseHandle } from '../warehouse/index';
import { q, table } from '../warehouse/schema';

/** One finding of `loyalty-ml doctor`. */
export interface Check {
  check: string;
  ok: boolean;
  detail: string;
}

/**
 * Checks that an installation can work, the way an operator would by hand: the registry and the
 * results store answer and honour conditional writes, the warehouse answers (and does not hold the
 * old system's recency default for everyone), and the served models' production versions exist
 * and verify. Every check runs even when an earlier one failed.
 */
export class DoctorService {
  constructor(
    private readonly deps: {
      config: Config;
      registry: ModelRegistry;
      resultsStore: ObjectStore;
      warehouse: () => Promise<WarehouseHandle>;
    },
  ) {}

  async run(): Promise<Check[]> {
    const { config, registry, resultsStore } = this.deps;
    const checks: Check[] = [];
    const check = async (name: string, body: () => Promise<string>) => {
      try {
        checks.push({ check: name, ok: true, detail: await body() });
      } catch (error) {
        checks.push({ check: name, ok: false, detail: describe(error) });
      }
    };
    const source = config.warehouse.kind === 'secret' ? `secret ${config.warehouse.secretArn} (TLS)` : redactUrl(config.warehouse.url);
    checks.push({ check: 'configuration', ok: true, detail: `stage ${config.stage}; registry ${registry.location}; results ${resultsStore.location}; warehouse ${source}` });

    await check('registry reachable', async () => `${(await registry.listModels()).length} models in ${registry.location}`);
    await check('registry conditional writes', () => conditional(registry.store, 'models/'));
    if (resultsStore.location !== registry.location) {
      await check('results store reachable', async () => `${(await resultsStore.list('segments/')).keys.length} objects under segments/ in ${resultsStore.location}`);
      await check('results store conditional writes', () => conditional(resultsStore, 'segments/'));
    } else await check('results store conditional writes', () => conditional(resultsStore, 'segments/'));

    await check('warehouse', async () => {
      const { warehouse } = await this.deps.warehouse();
      const [customers, segments] = await Promise.all([warehouse.countCustomers(), warehouse.listSegments()]);
      const recency = q(warehouse.cfg.features.days_since_last_transaction!);
      const defaulted = await warehouse.run<{ n: string }>(`SELECT COUNT(*) AS n FROM ${table(warehouse.cfg, warehouse.cfg.customer_features.table)} WHERE ${recency} = ${DEFAULTED_RECENCY}`);
      const share = customers ? Number(defaulted.rows[0]?.n ?? 0) / customers : 0;
      if (customers > 0 && share > 0.5) throw new Error(`${(share * 100).toFixed(0)}% of ${customers} customers have days_since_last_transaction = ${DEFAULTED_RECENCY} (the "unknown" default): RFM and churn would see them all alike`);
      return `${customers.toLocaleString('en-US')} customers, ${segments.length} segments (${warehouse.location}); recency defaulted for ${(share * 100).toFixed(1)}%`;
    });

    for (const name of Object.keys(SERVED_MODELS)) {
      await check(`model ${name}`, async () => {
        const { manifest } = await registry.readModel(name, config.servingAlias);
        if (manifest.status !== 'ready') throw new Error(`${config.servingAlias} is v${manifest.version}, which is ${manifest.status}`);
        return `${config.servingAlias} is v${manifest.version} (${manifest.lineage.family ?? manifest.model.producer}), checksum verified`;
      });
    }
    return checks;
  }
}

async function conditional(store: ObjectStore, prefix: string): Promise<string> {
  const support = await store.checkConditionalWrites(prefix);
  if (!support.ok) throw new Error(`${store.location} ${support.problems.join('; ')}: publishing and promotion are refused there`);
  return `${store.location} honours If-None-Match and If-Match`;
}

function describe(error: unknown): string {
  if (error instanceof LoyaltyError || error instanceof Error) return error.message;
  return String(error);
}
