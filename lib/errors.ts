/**
 * The error hierarchy. Every error the service raises on purpose is a LoyaltyError: it carries an
 * HTTP status, a stable machine-readable code and its cause. Its message is shown to an API caller
 * only below 500 (the caller's own mistake, which the message explains); from 500 up the caller
 * gets a fixed sentence per code and the message goes to the log. CLI users are operators and see
 * every message. Anything that is not a LoyaltyError is a bug and is reported as a bare 500.
 */
/**
 * Every error code the service answers with, in `{"error": {"code", "message"}}` and in logs: the
 * codes types refer to (ErrorCode), so a code is a checked name, never a free string.
 */
export const ERROR_CODES = [
  // 400
  'invalid_request', 'invalid_json', 'invalid_batch_size', 'invalid_path', 'invalid_segment_id', 'invalid_run_id', 'invalid_date',
  'invalid_propensity', 'invalid_model_name', 'invalid_alias_name', 'unsupported_media_type', 'unknown_model', 'usage',
  // 403, 405, 429 (the local front door and console)
  'read_only', 'method_not_allowed', 'too_many_requests',
  // 404
  'not_found', 'customer_not_found', 'model_not_found', 'version_not_found', 'alias_not_found', 'manifest_not_found', 'run_not_found',
  'chunk_not_found', 'segment_not_found', 'segment_not_scored', 'stats_not_found', 'performance_not_measured', 'no_demo_data', 'no_demo_history',
  // 409, 413, 422
  'conflict', 'write_contention', 'precondition_failed', 'run_in_progress', 'nothing_to_roll_back', 'model_refused', 'challenger_not_better',
  'payload_too_large', 'model_rejected', 'model_not_servable', 'model_not_feedable',
  // 5xx
  'integrity_check_failed', 'model_file_missing', 'store_unsafe', 'registry_unavailable', 'warehouse_unavailable', 'model_unavailable',
  'service_unavailable', 'configuration_error', 'timeout', 'internal_error', 'busy', 'function_unavailable', 'api_unreachable',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export abstract class LoyaltyError extends Error {
  abstract readonly status: number;
  abstract readonly code: ErrorCode;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }

  /** Whether the message may be shown to an API caller as it is: only for the caller's own mistakes. */
  get expose(): boolean {
    return this.status < 500;
  }

  /** Whether the command line should call this bad input (exit 2) rather than a failure (exit 1). */
  get userFault(): boolean {
    return this.status >= 400 && this.status < 500;
  }
}

/** The caller sent something malformed or out of range. */
export class ValidationError extends LoyaltyError {
  readonly status = 400;
  readonly code: ErrorCode;
  constructor(message: string, options?: { cause?: unknown; code?: ErrorCode }) {
    super(message, options);
    this.code = options?.code ?? 'invalid_request';
  }
}

/** The request body is larger than the service accepts. */
export class PayloadTooLargeError extends LoyaltyError {
  readonly status = 413;
  readonly code = 'payload_too_large';
}

/** A named thing (model, version, alias, customer, segment, run) does not exist. */
export class NotFoundError extends LoyaltyError {
  readonly status = 404;
  readonly code: ErrorCode;
  constructor(message: string, options?: { cause?: unknown; code?: ErrorCode }) {
    super(message, options);
    this.code = options?.code ?? 'not_found';
  }
}

/** A model file or manifest was refused: it cannot be published or promoted as it is. */
export class ModelRejectedError extends LoyaltyError {
  readonly status = 422;
  readonly code = 'model_rejected';
}

/** The operation lost a race or conflicts with the current state (e.g. promoting a refused model). */
export class ConflictError extends LoyaltyError {
  readonly status = 409;
  readonly code: ErrorCode;
  constructor(message: string, options?: { cause?: unknown; code?: ErrorCode }) {
    super(message, options);
    this.code = options?.code ?? 'conflict';
  }
}

/**
 * Writers kept overwriting each other: the retries of a compare-and-swap were spent. Nothing the
 * caller sent is wrong, so the command line exits 1, not 2; trying again later is the remedy.
 */
export class ContentionError extends LoyaltyError {
  readonly status = 409;
  readonly code = 'write_contention';
  override get userFault(): boolean {
    return false;
  }
}

/**
 * A store that does not honour conditional writes (If-None-Match / If-Match) would let racing
 * writers silently replace each other; the registry refuses to write to it.
 */
export class UnsafeStoreError extends LoyaltyError {
  readonly status = 503;
  readonly code = 'store_unsafe';
}

/**
 * A conditional write found the object in another state than expected (exists already, or changed).
 * Internal: callers in the registry retry or turn it into a ConflictError.
 */
export class PreconditionFailedError extends LoyaltyError {
  readonly status = 409;
  readonly code = 'precondition_failed';
}

/** Stored bytes do not match their recorded checksum, are missing, or a stored document is malformed. */
export class IntegrityError extends LoyaltyError {
  readonly status = 503;
  readonly code: ErrorCode;
  constructor(message: string, options?: { cause?: unknown; code?: ErrorCode }) {
    super(message, options);
    this.code = options?.code ?? 'integrity_check_failed';
  }
}

/** The object store (S3 or the local registry folder) could not be reached or failed. */
export class StoreUnavailableError extends LoyaltyError {
  readonly status = 503;
  readonly code = 'registry_unavailable';
}

/** The data warehouse could not be reached or failed. */
export class WarehouseUnavailableError extends LoyaltyError {
  readonly status = 503;
  readonly code = 'warehouse_unavailable';
}

/** No usable model is available to answer (none published, or none could be loaded). */
export class ModelUnavailableError extends LoyaltyError {
  readonly status = 503;
  readonly code = 'model_unavailable';
}

/** A dependency (another function, a queue) did not accept work; try again later. */
export class ServiceUnavailableError extends LoyaltyError {
  readonly status = 503;
  readonly code = 'service_unavailable';
}

/** The service's own configuration is invalid; raised at start-up with the variable's name. */
export class ConfigError extends LoyaltyError {
  readonly status = 500;
  readonly code = 'configuration_error';
}

/** The answer took longer than the caller's deadline allows. */
export class DeadlineExceededError extends LoyaltyError {
  readonly status = 504;
  readonly code = 'timeout';
}

/** The message that is safe to show an API caller for any thrown value. */
export function publicMessage(error: unknown): string {
  if (error instanceof LoyaltyError && error.expose) return error.message;
  if (error instanceof LoyaltyError) return defaultMessages[error.code] ?? 'The service could not answer; try again later';
  return 'Internal error';
}

const defaultMessages: Partial<Record<ErrorCode, string>> = {
  registry_unavailable: 'The model registry is unavailable; try again later',
  warehouse_unavailable: 'The data warehouse is unavailable; try again later',
  configuration_error: 'The service is misconfigured',
  model_unavailable: 'No usable model is available to answer; the operators have been alerted by the logs',
  integrity_check_failed: 'A stored model or document failed its integrity check; try again later',
  model_file_missing: 'A stored model file is missing; try again later',
  service_unavailable: 'A dependency did not accept the work; try again later',
  store_unsafe: 'The model store is not safe for writes',
  timeout: 'The answer was not ready within the deadline; try again or send fewer customers',
};

/**
 * How a problem is described inside a successful answer (model status, stale-model warnings):
 * findings about stored models (integrity, availability) keep their message, which names only the
 * model, its version and checksums; anything else is described by its public message.
 */
export function reportableMessage(error: unknown): string {
  if (error instanceof IntegrityError || error instanceof ModelUnavailableError) return error.message;
  return publicMessage(error);
}
