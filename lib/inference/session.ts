import { ValidationError } from '../errors';
import * as ort from 'onnxruntime-node';

ort.env.logLevel = 'error';

export type { InferenceSession } from 'onnxruntime-node';
export { ort };

/**
 * Builds an onnxruntime session from model bytes. One intra-op thread per session by default:
 * Lambda gives a function few vCPUs, and batches of a few hundred rows gain nothing from more.
 */
export async function createSession(bytes: Uint8Array, options: { threads?: number } = {}): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: options.threads ?? 1,
    interOpNumThreads: 1,
    logSeverityLevel: 3,
  });
}

/** The input and output metadata onnxruntime reports, in a stable plain shape. */
export interface SessionIo {
  inputs: { name: string; isTensor: boolean; type?: string; shape?: (number | string)[] }[];
  outputs: { name: string; isTensor: boolean; type?: string; shape?: (number | string)[] }[];
}

export function sessionIo(session: ort.InferenceSession): SessionIo {
  const describe = (m: ort.InferenceSession.ValueMetadata) =>
    m.isTensor
      ? { name: m.name, isTensor: true, type: m.type as string, shape: [...m.shape] }
      : { name: m.name, isTensor: false };
  return {
    inputs: session.inputMetadata.map(describe),
    outputs: session.outputMetadata.map(describe),
  };
}

/** A tensor of an ONNX input type from plain values. */
export function makeTensor(type: string, values: ArrayLike<number | string>, dims: number[]): ort.Tensor {
  const n = values.length;
  switch (type) {
    case 'float32':
      return new ort.Tensor('float32', Float32Array.from({ length: n }, (_, i) => Number(values[i])), dims);
    case 'float64':
      return new ort.Tensor('float64', Float64Array.from({ length: n }, (_, i) => Number(values[i])), dims);
    case 'int32':
      return new ort.Tensor('int32', Int32Array.from({ length: n }, (_, i) => Math.trunc(Number(values[i]))), dims);
    case 'int64':
      return new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(Math.trunc(Number(values[i])))), dims);
    case 'string':
      return new ort.Tensor('string', Array.from({ length: n }, (_, i) => String(values[i])), dims);
    default:
      throw new ValidationError(`Unsupported input type ${type}`);
  }
}
