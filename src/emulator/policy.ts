// AWS IoT policy evaluation, as pure functions: explicit Deny beats Allow, and anything not
// allowed is denied. Resources are ARNs (`client/`, `topic/`, `topicfilter/`) with `*` and `?`
// wildcards and policy variables.

export type IotAction = 'iot:Connect' | 'iot:Publish' | 'iot:Subscribe' | 'iot:Receive';

export interface PolicyStatement {
  effect: 'Allow' | 'Deny';
  actions: string[];
  resources: string[];
}

/** What policy variables resolve against; an unset value leaves its variable unresolved. */
export interface PolicyContext {
  clientId: string;
  /** Set only when the client id is the name of a thing attached to the certificate. */
  thingName?: string;
  certificateId: string;
}

export class PolicyDocumentError extends Error {
  override name = 'MalformedPolicyException';
}

const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : value === undefined ? [] : [value]);

/** Parses an IoT policy document; throws PolicyDocumentError naming what is malformed. */
export function parsePolicyDocument(document: string): PolicyStatement[] {
  let json: unknown;
  try {
    json = JSON.parse(document);
  } catch {
    throw new PolicyDocumentError('policy document is not valid JSON');
  }
  const statements = asList((json as { Statement?: unknown } | null)?.Statement);
  if (statements.length === 0) throw new PolicyDocumentError('policy document has no Statement');
  return statements.map((s, i) => {
    const st = s as { Effect?: unknown; Action?: unknown; Resource?: unknown };
    if (st.Effect !== 'Allow' && st.Effect !== 'Deny') throw new PolicyDocumentError(`Statement[${i}].Effect must be Allow or Deny`);
    const actions = asList(st.Action);
    const resources = asList(st.Resource);
    if (actions.length === 0 || !actions.every((a) => typeof a === 'string')) throw new PolicyDocumentError(`Statement[${i}].Action must be strings`);
    if (resources.length === 0 || !resources.every((r) => typeof r === 'string')) throw new PolicyDocumentError(`Statement[${i}].Resource must be strings`);
    return { effect: st.Effect, actions: actions as string[], resources: resources as string[] };
  });
}

const compiled = new Map<string, RegExp>();

/** The regular expression of a wildcard pattern: `*` any run of characters (slashes included), `?` any one. */
function wildcardRegex(pattern: string, caseInsensitive = false): RegExp {
  const key = `${caseInsensitive ? 'i' : '-'}${pattern}`;
  let regex = compiled.get(key);
  if (!regex) {
    const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[\\s\\S]*').replace(/\?/g, '[\\s\\S]');
    regex = new RegExp(`^${source}$`, caseInsensitive ? 'i' : '');
    // Patterns come from policies (after variable substitution): bounded, but keep it so.
    if (compiled.size >= 10_000) compiled.clear();
    compiled.set(key, regex);
  }
  return regex;
}

/** `*` matches any run of characters (slashes included), `?` any one character. */
export function wildcardMatch(pattern: string, value: string, caseInsensitive = false): boolean {
  return wildcardRegex(pattern, caseInsensitive).test(value);
}

/** Replaces policy variables; undefined when one cannot be resolved (the statement then does not apply). */
export function substituteVariables(resource: string, ctx: PolicyContext): string | undefined {
  let unresolved = false;
  const out = resource.replace(/\$\{([^}]+)\}/g, (whole, name: string) => {
    const value = variable(name, ctx);
    if (value === undefined) unresolved = true;
    return value ?? whole;
  });
  return unresolved ? undefined : out;
}

function variable(name: string, ctx: PolicyContext): string | undefined {
  switch (name) {
    case 'iot:ClientId':
      return ctx.clientId;
    case 'iot:Connection.Thing.ThingName':
      return ctx.thingName;
    case 'iot:Connection.Thing.IsAttached':
      return ctx.thingName === undefined ? 'false' : 'true';
    case 'iot:Certificate.Id':
      return ctx.certificateId;
    default:
      return undefined;
  }
}

/** A statement that applies to one action, its resources resolved for one connection. */
interface ResolvedStatement {
  effect: PolicyStatement['effect'];
  resources: RegExp[];
}

/** Decides whether `action` on `resourceArn` is allowed; made once for a connection's policies. */
export type PolicyCheck = (action: IotAction, resourceArn: string) => boolean;

/**
 * The policies of one connection, with their variables substituted and their wildcards compiled
 * once (a connection's context does not change), so each PUBLISH, SUBSCRIBE and delivery only
 * runs the regular expressions. Default deny, Deny beats Allow.
 */
export function compilePolicy(statements: readonly PolicyStatement[], ctx: PolicyContext): PolicyCheck {
  const byAction = new Map<IotAction, ResolvedStatement[]>();
  const forAction = (action: IotAction): ResolvedStatement[] => {
    let resolved = byAction.get(action);
    if (!resolved) {
      resolved = statements
        .filter((s) => s.actions.some((a) => wildcardMatch(a, action, true)))
        .map((s) => ({
          effect: s.effect,
          // A resource whose variable cannot be resolved never matches.
          resources: s.resources.flatMap((r) => {
            const pattern = substituteVariables(r, ctx);
            return pattern === undefined ? [] : [wildcardRegex(pattern)];
          }),
        }));
      byAction.set(action, resolved);
    }
    return resolved;
  };
  return (action, resourceArn) => {
    let allowed = false;
    for (const statement of forAction(action)) {
      if (!statement.resources.some((r) => r.test(resourceArn))) continue;
      if (statement.effect === 'Deny') return false;
      allowed = true;
    }
    return allowed;
  };
}

/** Evaluates every statement of every attached policy: default deny, Deny beats Allow. */
export function isAllowed(statements: PolicyStatement[], action: IotAction, resourceArn: string, ctx: PolicyContext): boolean {
  return compilePolicy(statements, ctx)(action, resourceArn);
}

/** The ARN an action is checked against: client/<id>, topic/<topic> or topicfilter/<filter>. */
export function resourceArnFor(action: IotAction, name: string, region: string, accountId: string): string {
  const kind = action === 'iot:Connect' ? 'client' : action === 'iot:Subscribe' ? 'topicfilter' : 'topic';
  return `arn:aws:iot:${region}:${accountId}:${kind}/${name}`;
}
