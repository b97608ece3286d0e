import { config as processConfig, type Config } from '../config';
import { TrainingService } from '../services/training';
import { createCoreApp, type CoreApp, type CoreParts } from './core';
import { perInstance } from './instance';

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

const instance = perInstance(() => createTrainingApp());

/** This instance's training app, created on first use. */
export const trainingApp = (): Promise<TrainingApp> => instance.get();
