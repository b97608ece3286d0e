/**
 * Imported before the tracer (lib/observability.ts): when this process will not trace (outside
 * Lambda, or POWERTOOLS_TRACE_ENABLED=false), the X-Ray SDK is told to start in manual mode. In
 * its default automatic mode it installs an async hook on load that follows every promise of the
 * process, traced or not: a CPU and garbage-collection cost on every request and segment chunk that
 * buys nothing when no trace is sent. A Lambda that traces keeps the automatic mode.
 */
const tracing = Boolean(process.env.AWS_LAMBDA_FUNCTION_NAME) && process.env.POWERTOOLS_TRACE_ENABLED !== 'false';
if (!tracing) process.env.AWS_XRAY_MANUAL_MODE ??= 'true';

export {};
