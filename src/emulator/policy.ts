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

/** `*` matches any run of characters (slashes included), `?` any one character. */
export function wildcardMatch(pattern: string, value: string, caseInsensitive = false): boolean {
  const key = `${caseInsensitive ? 'i' : '-'}${pattern}`;
  let regex = compiled.get(key);
  if (!regex) {
    const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[\\s\\S]*').replace(/\?/g, '[\\s\\S]');
    regex = new RegExp(`^${source}$`, caseInsensitive ? 'i' : '');
    // Patterns come from policies (after variable substitution): bounded, but keep it so.
    if (compiled.size >= 10_000) compiled.clear();
    compiled.set(key, regex);
  }
  return regex.test(value);
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

function applies(statement: PolicyStatement, action: IotAction, resourceArn: string, ctx: PolicyContext): boolean {
  if (!statement.actions.some((a) => wildcardMatch(a, action, true))) return false;
  return statement.resources.some((r) => {
    const pattern = substituteVariables(r, ctx);
    return pattern !== undefined && wildcardMatch(pattern, resourceArn);
  });
}

/** Evaluates every statement of every attached policy: default deny, Deny beats Allow. */
export function isAllowed(statements: PolicyStatement[], action: IotAction, resourceArn: string, ctx: PolicyContext): boolean {
  let allowed = false;
  for (const statement of statements) {
    if (!applies(statement, action, resourceArn, ctx)) continue;
    if (statement.effect === 'Deny') return false;
    allowed = true;
  }
  return allowed;
}

/** The ARN an action is checked against: client/<id>, topic/<topic> or topicfilter/<filter>. */
export function resourceArnFor(action: IotAction, name: string, region: string, accountId: string): string {
  const kind = action === 'iot:Connect' ? 'client' : action === 'iot:Subscribe' ? 'topicfilter' : 'topic';
  return `arn:aws:iot:${region}:${accountId}:${kind}/${name}`;
}
