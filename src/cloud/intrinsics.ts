// Just enough of CloudFormation's intrinsic functions (Ref, Fn::GetAtt, Fn::Sub, Fn::Join) to
// evaluate our own stack without CloudFormation: the local provider applies the stack's IoT
// resources to the emulator with the same values AWS would compute.

export interface ResolveContext {
  /** Pseudo parameters (AWS::Region...) and stack parameters. */
  values: Record<string, string>;
  /** What Ref of a resource gives (its physical name), by logical id. */
  refs: Record<string, string>;
  /** Fn::GetAtt results, by "LogicalId.Attribute". */
  attributes: Record<string, string>;
}

export class IntrinsicError extends Error {}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function lookup(name: string, ctx: ResolveContext, locals: Record<string, string> = {}): string {
  const value = locals[name] ?? ctx.values[name] ?? ctx.refs[name] ?? (name.includes('.') ? ctx.attributes[name] : undefined);
  if (value === undefined) throw new IntrinsicError(`unresolved reference ${name}`);
  return value;
}

function substitute(text: string, ctx: ResolveContext, locals: Record<string, string>): string {
  // `${!Literal}` stays as `${Literal}` (how IoT policy variables survive Fn::Sub).
  return text.replace(/\$\{(!?)([^}]+)\}/g, (_whole, bang: string, name: string) =>
    bang ? `\${${name}}` : lookup(name.trim(), ctx, locals),
  );
}

export function resolve(value: unknown, ctx: ResolveContext): unknown {
  if (Array.isArray(value)) return value.map((v) => resolve(v, ctx));
  if (!isObject(value)) return value;
  const keys = Object.keys(value);
  if (keys.length === 1) {
    const [fn] = keys as [string];
    const arg = value[fn];
    switch (fn) {
      case 'Ref':
        return lookup(String(arg), ctx);
      case 'Fn::GetAtt': {
        const [resource, attribute] = arg as [string, string];
        return lookup(`${resource}.${attribute}`, ctx);
      }
      case 'Fn::Join': {
        const [sep, list] = arg as [string, unknown[]];
        return (resolve(list, ctx) as string[]).join(sep);
      }
      case 'Fn::Sub': {
        if (typeof arg === 'string') return substitute(arg, ctx, {});
        const [text, vars] = arg as [string, Record<string, unknown>];
        const locals = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, String(resolve(v, ctx))]));
        return substitute(text, ctx, locals);
      }
      default:
        if (fn.startsWith('Fn::')) throw new IntrinsicError(`unsupported intrinsic function ${fn}`);
    }
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, ctx)]));
}

export const resolveString = (value: unknown, ctx: ResolveContext): string => {
  const out = resolve(value, ctx);
  if (typeof out !== 'string') throw new IntrinsicError(`expected a string, got ${JSON.stringify(out)}`);
  return out;
};
