/**
 * Just enough IAM policy evaluation for the rehearsal's own Lambda Invoke endpoint (moto checks
 * every other call itself): an explicit Deny wins, then any Allow whose Action and Resource match,
 * with `*` and `?` wildcards. Conditions are not evaluated (the roles' invoke grants have none).
 */
export interface PolicyStatement {
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource?: string | string[];
  Condition?: unknown;
}

export interface PolicyDocument {
  Version?: string;
  Statement: PolicyStatement | PolicyStatement[];
}

export function isAllowed(policies: PolicyDocument[], action: string, resource: string): boolean {
  let allowed = false;
  for (const policy of policies) {
    for (const statement of [policy.Statement].flat()) {
      if (!matchesAny(statement.Action, action) || !matchesAny(statement.Resource ?? '*', resource)) continue;
      if (statement.Effect === 'Deny') return false;
      allowed = true;
    }
  }
  return allowed;
}

function matchesAny(patterns: string | string[], value: string): boolean {
  return [patterns].flat().some((p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i').test(value));
}
