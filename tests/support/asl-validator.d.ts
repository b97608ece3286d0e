declare module 'asl-validator' {
  /** Validates an Amazon States Language definition (the package ships no types). */
  export default function aslValidator(definition: unknown, options?: Record<string, unknown>): { isValid: boolean; errors: unknown[]; errorsText: (separator?: string) => string };
}
