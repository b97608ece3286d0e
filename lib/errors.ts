/**
 * The error hierarchy. Every error the service raises on purpose is a LoyaltyError: it carries an
 * HTTP status, a stable machine-readable code, and `expose`, which says whether its message is safe
 * to show to a caller. Anything that is not a LoyaltyError is a bug and is reported as a bare 500.
 */
export abstract class LoyaltyError extends Error {
  abstract readonly status: number;
  abstract readonly code: string;
  /** Whether the message may be shown to an API caller or CLI user as it is. */
  readonly expose: boolean = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The caller sent something malformed or out of range. */
export class ValidationError extends LoyaltyError {
  readonly status = 400;
  readonly code: string;
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
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
  readonly code: string;
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
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
  readonly code: string;
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(message, options);
    this.code = options?.code ?? 'conflict';
  }
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
  readonly code: string;
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(message, options);
    this.code = options?.code ?? 'integrity_check_failed';
  }
}

/** The object store (S3 or the local registry folder) could not be reached or failed. */
export class StoreUnavailableError extends LoyaltyError {
  readonly status = 503;
  readonly code = 'registry_unavailable';
  override readonly expose = false;
}

/** The data warehouse could not be reached or failed. */
export class WarehouseUnavailableError extends LoyaltyError {
  readonly status = 503;
  readonly code = 'warehouse_unavailable';
  override readonly expose = false;
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
  override readonly expose = false;
}

/** The message that is safe to show for any thrown value. */
export function publicMessage(error: unknown): string {
  if (error instanceof LoyaltyError && error.expose) return error.message;
  if (error instanceof LoyaltyError) return defaultMessages[error.code] ?? 'Internal error';
  return 'Internal error';
}

const defaultMessages: Record<string, string> = {
  registry_unavailable: 'The model registry is unavailable; try again later',
  warehouse_unavailable: 'The data warehouse is unavailable; try again later',
  configuration_error: 'The service is misconfigured',
};
