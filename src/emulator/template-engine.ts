// The provisioning-template language (DESIGN.md "Template language"), as a pure function from a
// template body and request parameters to a plan of what RegisterThing must create.

export type Override = 'DO_NOTHING' | 'REPLACE' | 'FAIL' | 'MERGE';
const OVERRIDES: readonly Override[] = ['DO_NOTHING', 'REPLACE', 'FAIL', 'MERGE'];

export interface ThingPlan {
  thingName: string;
  attributes?: Record<string, string>;
  thingGroups?: string[];
  thingTypeName?: string;
  overrideSettings: { AttributePayload?: Override; ThingGroups?: Override; ThingTypeName?: Override };
}

export type PolicyPlan = { policyName: string } | { policyDocument: string };

export interface ProvisioningPlan {
  thing?: ThingPlan;
  certificate?: { certificateId: string; status: 'ACTIVE' | 'INACTIVE' };
  policies: PolicyPlan[];
  deviceConfiguration: Record<string, string>;
}

/** A rejection with AWS's status and error code; the message names what is wrong. */
export class TemplateError extends Error {
  override name = 'TemplateError';
  constructor(
    message: string,
    readonly statusCode = 400,
    readonly errorCode = 'InvalidParameters',
  ) {
    super(message);
  }
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };
/** What an expression evaluates to: a string or, from Fn::Split, a list of strings. */
type Value = string | string[];

interface ParameterDeclaration {
  Type?: string;
  Default?: Json;
}

export interface Template {
  Parameters: Record<string, ParameterDeclaration>;
  Mappings: Record<string, Record<string, Record<string, Json>>>;
  Resources: Record<string, JsonObject>;
  DeviceConfiguration: JsonObject;
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses a template body (JSON text); throws TemplateError when it is not a template. */
export function parseTemplate(body: string): Template {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new TemplateError('template body is not valid JSON');
  }
  if (!isObject(json)) throw new TemplateError('template body must be a JSON object');
  for (const key of ['Parameters', 'Mappings', 'Resources', 'DeviceConfiguration'] as const) {
    if (json[key] !== undefined && !isObject(json[key])) throw new TemplateError(`template ${key} must be an object`);
  }
  return {
    Parameters: (json.Parameters ?? {}) as Template['Parameters'],
    Mappings: (json.Mappings ?? {}) as Template['Mappings'],
    Resources: (json.Resources ?? {}) as Template['Resources'],
    DeviceConfiguration: (json.DeviceConfiguration ?? {}) as JsonObject,
  };
}

/** Parameter values: the request's, then declared defaults, then system values (certificate id, region...). */
export function resolveParameters(
  template: Template,
  given: Record<string, string>,
  system: Record<string, string>,
): Record<string, string> {
  const values: Record<string, string> = { ...system };
  for (const [name, declaration] of Object.entries(template.Parameters)) {
    const type = declaration?.Type ?? 'String';
    if (type !== 'String' && type !== 'Number' && type !== 'CommaDelimitedList')
      throw new TemplateError(`parameter ${name} has unsupported Type ${type}`);
    if (name in system) continue;
    const value = given[name] ?? declaration.Default;
    if (value === undefined || value === null) throw new TemplateError(`missing parameter ${name}`);
    values[name] = String(value);
  }
  return values;
}

class Evaluator {
  constructor(
    private readonly template: Template,
    private readonly parameters: Record<string, string>,
  ) {}

  /** Evaluates an expression that must produce a string. */
  string(node: Json, where: string): string {
    const value = this.value(node, where);
    if (typeof value !== 'string') throw new TemplateError(`${where}: expected a string, got a list`);
    return value;
  }

  list(node: Json, where: string): string[] {
    if (Array.isArray(node)) return node.map((item, i) => this.string(item, `${where}[${i}]`));
    const value = this.value(node, where);
    return typeof value === 'string' ? value.split(',') : value;
  }

  value(node: Json, where: string): Value {
    if (typeof node === 'string') return node;
    if (typeof node === 'number' || typeof node === 'boolean') return String(node);
    if (Array.isArray(node)) return node.map((item, i) => this.string(item, `${where}[${i}]`));
    if (node === null) throw new TemplateError(`${where}: null is not a value`);
    const keys = Object.keys(node);
    const fn = keys[0];
    if (keys.length !== 1 || fn === undefined || !(fn === 'Ref' || fn.startsWith('Fn::')))
      throw new TemplateError(`${where}: expected a string or one intrinsic function, got an object with keys ${keys.join(', ')}`);
    return this.intrinsic(fn, node[fn]!, `${where}.${fn}`);
  }

  private intrinsic(fn: string, arg: Json, where: string): Value {
    switch (fn) {
      case 'Ref':
        return this.ref(this.string(arg, where));
      case 'Fn::Join': {
        const [delimiter, items] = this.args(arg, 2, where);
        return this.list(items!, where).join(this.string(delimiter!, where));
      }
      case 'Fn::Select': {
        const [index, items] = this.args(arg, 2, where);
        const list = this.list(items!, where);
        const i = Number(this.string(index!, where));
        if (!Number.isInteger(i) || i < 0 || i >= list.length) throw new TemplateError(`${where}: index ${i} is out of range (list has ${list.length})`);
        return list[i]!;
      }
      case 'Fn::Split': {
        const [delimiter, source] = this.args(arg, 2, where);
        return this.string(source!, where).split(this.string(delimiter!, where));
      }
      case 'Fn::FindInMap': {
        const [map, top, second] = this.args(arg, 3, where).map((a) => this.string(a, where)) as [string, string, string];
        const value = this.template.Mappings[map]?.[top]?.[second];
        if (value === undefined) throw new TemplateError(`${where}: no mapping ${map}.${top}.${second}`);
        return this.value(value, where);
      }
      case 'Fn::Sub':
        return this.sub(arg, where);
      default:
        throw new TemplateError(`unknown intrinsic function ${fn} at ${where.slice(0, -fn.length - 1)}`);
    }
  }

  private args(arg: Json, count: number, where: string): Json[] {
    if (!Array.isArray(arg) || arg.length !== count) throw new TemplateError(`${where}: expected a list of ${count} arguments`);
    return arg;
  }

  private ref(name: string): string {
    const value = this.parameters[name];
    if (value === undefined) throw new TemplateError(`Ref to unknown parameter ${name}`);
    return value;
  }

  private sub(arg: Json, where: string): string {
    let text: string;
    let variables: Record<string, string> = {};
    if (typeof arg === 'string') text = arg;
    else if (Array.isArray(arg) && arg.length === 2 && typeof arg[0] === 'string' && isObject(arg[1])) {
      text = arg[0];
      variables = Object.fromEntries(Object.entries(arg[1]).map(([k, v]) => [k, this.string(v, `${where}.${k}`)]));
    } else throw new TemplateError(`${where}: expected a string or [string, {variables}]`);
    // ${!Name} is the literal "${Name}", as in CloudFormation.
    return text.replace(/\$\{(!?)([^}]+)\}/g, (_, bang: string, name: string) => {
      if (bang) return `\${${name}}`;
      return variables[name] ?? this.ref(name);
    });
  }
}

const overrideOf = (value: Json | undefined, where: string): Override | undefined => {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && (OVERRIDES as readonly string[]).includes(value)) return value as Override;
  throw new TemplateError(`${where}: expected one of ${OVERRIDES.join(', ')}`);
};

/**
 * Evaluates a template for one RegisterThing request. `system` holds the values AWS supplies
 * (AWS::IoT::Certificate::Id and friends); they cannot be overridden by the device.
 */
export function evaluateTemplate(template: Template, given: Record<string, string>, system: Record<string, string>): ProvisioningPlan {
  const ev = new Evaluator(template, resolveParameters(template, given, system));
  const plan: ProvisioningPlan = { policies: [], deviceConfiguration: {} };
  for (const [logicalId, resource] of Object.entries(template.Resources)) {
    if (!isObject(resource)) throw new TemplateError(`resource ${logicalId} must be an object`);
    const props = isObject(resource.Properties) ? resource.Properties : {};
    const where = `Resources.${logicalId}.Properties`;
    switch (resource.Type) {
      case 'AWS::IoT::Thing': {
        if (plan.thing) throw new TemplateError(`resource ${logicalId}: a template may declare only one thing`);
        if (props.ThingName === undefined) throw new TemplateError(`${where}.ThingName is required`);
        const thingName = ev.string(props.ThingName, `${where}.ThingName`);
        if (!/^[a-zA-Z0-9:_-]{1,128}$/.test(thingName)) throw new TemplateError(`thing name "${thingName}" is not valid`);
        const overrides = isObject(resource.OverrideSettings) ? resource.OverrideSettings : {};
        plan.thing = {
          thingName,
          overrideSettings: {
            AttributePayload: overrideOf(overrides.AttributePayload, `Resources.${logicalId}.OverrideSettings.AttributePayload`),
            ThingGroups: overrideOf(overrides.ThingGroups, `Resources.${logicalId}.OverrideSettings.ThingGroups`),
            ThingTypeName: overrideOf(overrides.ThingTypeName, `Resources.${logicalId}.OverrideSettings.ThingTypeName`),
          },
        };
        if (props.AttributePayload !== undefined) {
          if (!isObject(props.AttributePayload)) throw new TemplateError(`${where}.AttributePayload must be an object`);
          plan.thing.attributes = Object.fromEntries(
            Object.entries(props.AttributePayload).map(([k, v]) => [k, ev.string(v, `${where}.AttributePayload.${k}`)]),
          );
        }
        if (props.ThingGroups !== undefined) plan.thing.thingGroups = ev.list(props.ThingGroups, `${where}.ThingGroups`);
        if (props.ThingTypeName !== undefined) plan.thing.thingTypeName = ev.string(props.ThingTypeName, `${where}.ThingTypeName`);
        break;
      }
      case 'AWS::IoT::Certificate': {
        if (props.CertificateId === undefined) throw new TemplateError(`${where}.CertificateId is required (fleet provisioning supports CertificateId only)`);
        const status = props.Status === undefined ? 'ACTIVE' : ev.string(props.Status, `${where}.Status`).toUpperCase();
        if (status !== 'ACTIVE' && status !== 'INACTIVE') throw new TemplateError(`${where}.Status must be ACTIVE or INACTIVE`);
        plan.certificate = { certificateId: ev.string(props.CertificateId, `${where}.CertificateId`), status };
        break;
      }
      case 'AWS::IoT::Policy': {
        if (props.PolicyName !== undefined) plan.policies.push({ policyName: ev.string(props.PolicyName, `${where}.PolicyName`) });
        else if (props.PolicyDocument !== undefined)
          plan.policies.push({
            policyDocument: typeof props.PolicyDocument === 'string' ? props.PolicyDocument : JSON.stringify(props.PolicyDocument),
          });
        else throw new TemplateError(`${where} needs PolicyName or PolicyDocument`);
        break;
      }
      default:
        throw new TemplateError(`resource ${logicalId} has unsupported Type ${String(resource.Type)}`);
    }
  }
  for (const [key, node] of Object.entries(template.DeviceConfiguration)) {
    plan.deviceConfiguration[key] = ev.string(node, `DeviceConfiguration.${key}`);
  }
  return plan;
}
