import { config as processConfig, type Config } from '../config';
import { TrainingService } from '../services/training';
import { createCoreApp, type CoreApp, type CoreParts } from './core';

/** The core app plus training (which exports and verifies ONNX, so it loads onnxruntime). */
export interface TrainingApp extends CoreApp {
  training: TrainingService;
}

export function withTraining(core: CoreApp): TrainingApp {
  return { ...core, training: new TrainingService({ registry: core.registry, warehouse: core.warehouse }) };
}

export async function createTrainingApp(cfg: Config = processConfig(), parts: CoreParts = {}): Promise<TrainingApp> {
  return withTraining(await createCoreApp(cfg, parts));
}

let instance: Promise<TrainingApp> | undefined;

/** This instance's training app, created on first use; a failed creation is retried on the next call. */
export function trainingApp(): Promise<TrainingApp> {
  instance ??= createTrainingApp().catch((error: unknown) => {
    instance = undefined;
    throw error;
  });
  return instance;
}
