// Checks a CloudFormation template against CloudFormation's own resource schemas, as the
// maintained machine-readable spec @aws-cdk/aws-service-spec carries them: every resource type,
// property name and type, required property, allowed value, Fn::GetAtt attribute, Ref and
// Fn::Sub target, DependsOn target and resource attribute. Returns one line per problem.
import { loadAwsServiceSpec } from '@aws-cdk/aws-service-spec';

type SpecDatabase = Awaited<ReturnType<typeof loadAwsServiceSpec>>;
interface SpecResource {
  cloudFormationType: string;
  properties: Record<string, PropertySpec>;
  attributes: Record<string, unknown>;
}
// The property types of the spec (service-spec-types' PropertyType), as far as we read them.
type PropertyType =
  | { type: 'string' | 'number' | 'integer' | 'boolean' | 'date-time' | 'json' | 'null' | 'tag'; allowedValues?: unknown[] }
  | { type: 'array' | 'map'; element: PropertyType }
  | { type: 'ref'; reference: { $ref: string } }
  | { type: 'union'; types: PropertyType[] };
interface PropertySpec {
  type: PropertyType;
  required?: boolean;
}

let database: Promise<SpecDatabase> | undefined;
export const specDatabase = (): Promise<SpecDatabase> => (database ??= loadAwsServiceSpec());

const PSEUDO = ['AWS::AccountId', 'AWS::NotificationARNs', 'AWS::NoValue', 'AWS::Partition', 'AWS::Region', 'AWS::StackId', 'AWS::StackName', 'AWS::URLSuffix'];
const RESOURCE_KEYS = new Set(['Type', 'Properties', 'DependsOn', 'DeletionPolicy', 'UpdateReplacePolicy', 'Condition', 'Metadata']);
const DELETION_POLICIES = ['Delete', 'Retain', 'RetainExceptOnCreate', 'Snapshot'];
const INTRINSICS = new Set(['Ref', 'Fn::GetAtt', 'Fn::Sub', 'Fn::Join', 'Fn::Select', 'Fn::Split', 'Fn::If', 'Fn::ImportValue', 'Fn::FindInMap', 'Fn::Base64', 'Fn::GetAZs', 'Fn::Cidr', 'Fn::Length', 'Fn::ToJsonString']);
const TAG: Record<string, PropertySpec> = { Key: { type: { type: 'string' }, required: true }, Value: { type: { type: 'string' }, required: true } };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isIntrinsic = (v: unknown): boolean => isObject(v) && Object.keys(v).length === 1 && INTRINSICS.has(Object.keys(v)[0]!);

interface Template {
  Parameters?: Record<string, unknown>;
  Resources: Record<string, Record<string, unknown>>;
  Outputs?: Record<string, { Value: unknown }>;
}

export async function validateTemplate(template: Template): Promise<string[]> {
  const db = await specDatabase();
  const problems: string[] = [];
  const resources: Record<string, SpecResource | 'custom'> = {};
  const lookup = (type: string): SpecResource | undefined => {
    const found = db.lookup('resource', 'cloudFormationType', 'equals', type);
    return found.length === 1 ? (found.only() as unknown as SpecResource) : undefined;
  };

  for (const [id, resource] of Object.entries(template.Resources)) {
    const type = String(resource.Type);
    const custom = type.startsWith('Custom::');
    const spec = lookup(custom ? 'AWS::CloudFormation::CustomResource' : type);
    if (!spec) {
      problems.push(`${id}: unknown resource type ${type}`);
      continue;
    }
    resources[id] = custom ? 'custom' : spec;
    for (const key of Object.keys(resource)) if (!RESOURCE_KEYS.has(key)) problems.push(`${id}: unknown resource attribute ${key}`);
    for (const key of ['DeletionPolicy', 'UpdateReplacePolicy']) {
      if (resource[key] !== undefined && !DELETION_POLICIES.includes(String(resource[key]))) problems.push(`${id}.${key}: ${String(resource[key])} is not one of ${DELETION_POLICIES.join(', ')}`);
    }
    for (const dep of (resource.DependsOn as string[] | undefined) ?? []) if (!template.Resources[dep]) problems.push(`${id}.DependsOn: no resource ${dep}`);
    const props = (resource.Properties ?? {}) as Record<string, unknown>;
    checkObject(`${id}.Properties`, props, spec.properties, custom, problems, db);
  }

  // References: Ref and Fn::Sub names, Fn::GetAtt resources and attributes.
  const parameters = new Set(Object.keys(template.Parameters ?? {}));
  const refTarget = (where: string, name: string, locals: string[] = []) => {
    if (PSEUDO.includes(name) || parameters.has(name) || template.Resources[name] || locals.includes(name)) return;
    problems.push(`${where}: Ref to unknown ${name}`);
  };
  const getAtt = (where: string, resourceId: string, attribute: string) => {
    const spec = resources[resourceId];
    if (!template.Resources[resourceId]) return problems.push(`${where}: Fn::GetAtt of unknown resource ${resourceId}`);
    if (spec === 'custom' || spec === undefined) return; // a custom resource answers with any attribute
    if (!(attribute in spec.attributes)) problems.push(`${where}: ${resourceId} (${spec.cloudFormationType}) has no attribute ${attribute} (it has ${Object.keys(spec.attributes).join(', ')})`);
  };
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${where}[${i}]`));
    if (!isObject(node)) return;
    for (const [key, value] of Object.entries(node)) {
      if (key === 'Ref') refTarget(where, String(value));
      else if (key === 'Fn::GetAtt') {
        const [resourceId, attribute] = typeof value === 'string' ? value.split('.') : (value as string[]);
        getAtt(where, resourceId!, attribute!);
      } else if (key === 'Fn::Sub') {
        const [text, vars] = typeof value === 'string' ? [value, {}] : (value as [string, Record<string, unknown>]);
        for (const m of text.matchAll(/\$\{([^!}][^}]*)\}/g)) {
          const name = m[1]!;
          if (name.includes('.') && !PSEUDO.includes(name)) getAtt(where, name.split('.')[0]!, name.split('.').slice(1).join('.'));
          else refTarget(where, name, Object.keys(vars));
        }
        walk(vars, `${where}.Fn::Sub`);
      } else walk(value, `${where}.${key}`);
    }
  };
  walk(template.Resources, 'Resources');
  walk(template.Outputs ?? {}, 'Outputs');
  return problems;
}

function checkObject(
  where: string,
  value: Record<string, unknown>,
  properties: Record<string, PropertySpec>,
  openEnded: boolean,
  problems: string[],
  db: SpecDatabase,
): void {
  for (const [name, spec] of Object.entries(properties)) {
    if (spec.required && value[name] === undefined) problems.push(`${where}: missing required property ${name}`);
  }
  for (const [name, v] of Object.entries(value)) {
    const spec = properties[name];
    if (!spec) {
      if (!openEnded) problems.push(`${where}: unknown property ${name} (known: ${Object.keys(properties).sort().join(', ')})`);
      continue;
    }
    checkValue(`${where}.${name}`, v, spec.type, problems, db);
  }
}

function checkValue(where: string, value: unknown, type: PropertyType, problems: string[], db: SpecDatabase): void {
  // An intrinsic function's result is only known at deploy time; its own targets are checked above.
  if (isIntrinsic(value)) return;
  const bad = (expected: string) => problems.push(`${where}: expected ${expected}, got ${JSON.stringify(value)}`);
  switch (type.type) {
    case 'string':
    case 'date-time':
      if (typeof value !== 'string') return void bad('a string');
      break;
    case 'number':
      if (typeof value !== 'number') return void bad('a number');
      break;
    case 'integer':
      if (!Number.isInteger(value)) return void bad('an integer');
      break;
    case 'boolean':
      if (typeof value !== 'boolean') return void bad('a boolean');
      break;
    case 'json':
      if (!isObject(value) && !Array.isArray(value)) return void bad('a JSON object');
      return;
    case 'null':
      return;
    case 'tag':
      if (!isObject(value)) return void bad('a tag {Key, Value}');
      return checkObject(where, value, TAG, false, problems, db);
    case 'array':
      if (!Array.isArray(value)) return void bad('a list');
      return value.forEach((v, i) => checkValue(`${where}[${i}]`, v, type.element, problems, db));
    case 'map':
      if (!isObject(value)) return void bad('a map');
      return Object.entries(value).forEach(([k, v]) => checkValue(`${where}.${k}`, v, type.element, problems, db));
    case 'ref': {
      const definition = db.get('typeDefinition', type.reference.$ref) as { name: string; properties: Record<string, PropertySpec> };
      if (!isObject(value)) return void bad(`a ${definition.name} object`);
      return checkObject(where, value, definition.properties, false, problems, db);
    }
    case 'union': {
      // Accepted when any member type accepts it.
      const results = type.types.map((t) => {
        const own: string[] = [];
        checkValue(where, value, t, own, db);
        return own;
      });
      if (!results.some((r) => r.length === 0)) problems.push(...results[0]!);
      return;
    }
  }
  const allowed = (type as { allowedValues?: unknown[] }).allowedValues;
  if (allowed && !allowed.includes(value)) problems.push(`${where}: ${JSON.stringify(value)} is not one of ${allowed.join(', ')}`);
}
