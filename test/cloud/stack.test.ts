import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { evaluateTemplate, parseTemplate } from '../../src/emulator/template-engine.ts';
import { isAllowed, parsePolicyDocument, resourceArnFor, type IotAction } from '../../src/emulator/policy.ts';
import { resolve, resolveString } from '../../src/cloud/intrinsics.ts';
import { stackContext } from '../../src/cloud/providers/local.ts';
import { buildStack, GREENGRASS_DATA_PLANE_ACTIONS, LAMBDA_RUNTIME, RESOURCE_STAR_ACTIONS, stackParameterValues, type CfnTemplate, type StackOptions } from '../../src/cloud/stack.ts';
import { defaultStackOptions, renderStackYaml, TEMPLATE_FILE } from '../../src/cloud/template-yaml.ts';
import { PRE_PROVISIONING_HOOK_SOURCE } from '../../src/shared/pre-provisioning-hook.ts';
import { ROOT } from '../helpers/run.ts';

const PSEUDO = ['AWS::StackName', 'AWS::Region', 'AWS::AccountId', 'AWS::Partition', 'AWS::URLSuffix'];
const REGION = 'eu-west-1';
const ACCOUNT = '123456789012';

/** Every intrinsic reference in the template, with what it may legally point at. */
function references(template: CfnTemplate): { where: string; target: string; locals: string[] }[] {
  const found: { where: string; target: string; locals: string[] }[] = [];
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${where}[${i}]`));
    if (typeof node !== 'object' || node === null) return;
    for (const [key, value] of Object.entries(node)) {
      if (key === 'Ref') found.push({ where, target: String(value), locals: [] });
      else if (key === 'Fn::GetAtt') found.push({ where, target: (value as string[])[0]!, locals: [] });
      else if (key === 'Fn::Sub') {
        const [text, vars] = typeof value === 'string' ? [value, {}] : (value as [string, Record<string, unknown>]);
        for (const m of text.matchAll(/\$\{([^!}][^}]*)\}/g)) found.push({ where, target: m[1]!.split('.')[0]!, locals: Object.keys(vars) });
        walk(vars, `${where}.Fn::Sub`);
      } else walk(value, `${where}.${key}`);
    }
  };
  walk(template.Resources, 'Resources');
  walk(template.Outputs, 'Outputs');
  return found;
}

function statements(template: CfnTemplate): { Action: string | string[]; Resource: unknown; where: string }[] {
  const out: { Action: string | string[]; Resource: unknown; where: string }[] = [];
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${where}[${i}]`));
    if (typeof node !== 'object' || node === null) return;
    const n = node as Record<string, unknown>;
    if (n.Effect && n.Action) out.push({ Action: n.Action as string[], Resource: n.Resource, where });
    for (const [k, v] of Object.entries(n)) walk(v, `${where}.${k}`);
  };
  walk(template.Resources, 'Resources');
  return out;
}

describe('the committed CloudFormation template', () => {
  it('is exactly what stack.ts generates (regenerate: fp-yocto init --write-template)', async () => {
    const committed = await readFile(path.join(ROOT, TEMPLATE_FILE), 'utf8');
    expect(committed).toBe(renderStackYaml());
  });

  it('fits in a CreateChangeSet TemplateBody (51,200 bytes)', () => {
    expect(Buffer.byteLength(JSON.stringify(buildStack(defaultStackOptions())))).toBeLessThan(51_200);
  });

  it('parses back to the stack object', async () => {
    const committed = await readFile(path.join(ROOT, TEMPLATE_FILE), 'utf8');
    expect(parse(committed)).toEqual(buildStack(defaultStackOptions()));
  });
});

describe.each([
  ['greengrass', { ...defaultStackOptions() }],
  ['standalone, custom names, allow-list, artifact buckets', { ...defaultStackOptions(), greengrass: false, templateName: 'my-tpl', thingGroupName: 'my-group', requireAllowList: true, thingAttributes: ['model'], artifactBuckets: ['my-artifacts', 'other.bucket'] }],
] as [string, StackOptions][])('stack structure (%s)', (_label, options) => {
  const template = parse(renderStackYaml(options)) as CfnTemplate;

  it('has every Ref, GetAtt and Sub target defined', () => {
    const known = new Set([...PSEUDO, ...Object.keys(template.Parameters), ...Object.keys(template.Resources)]);
    const refs = references(template);
    expect(refs.length).toBeGreaterThan(20);
    for (const ref of refs) {
      expect(known.has(ref.target) || ref.locals.includes(ref.target), `${ref.where}: ${ref.target}`).toBe(true);
    }
    for (const [id, r] of Object.entries(template.Resources)) {
      for (const dep of r.DependsOn ?? []) expect(template.Resources[dep], `${id} DependsOn ${dep}`).toBeDefined();
    }
  });

  it('never allows a wildcard action, and "*" resources only for actions IAM cannot scope', () => {
    const all = statements(template);
    expect(all.length).toBeGreaterThan(8);
    for (const s of all) {
      const actions = [s.Action].flat();
      for (const action of actions) expect(action, s.where).not.toContain('*');
      if ([s.Resource].flat().includes('*')) {
        expect(actions.every((a) => RESOURCE_STAR_ACTIONS.includes(a)), `${s.where}: ${actions.join(', ')} on *`).toBe(true);
      }
    }
  });

  it('derives every physical name from the stack name (IAM names also from the region)', () => {
    const nameProps = ['RoleName', 'PolicyName', 'FunctionName', 'ThingGroupName', 'TemplateName', 'RoleAlias'];
    for (const [id, r] of Object.entries(template.Resources)) {
      for (const prop of nameProps) {
        const value = r.Properties[prop] as { 'Fn::Sub'?: string } | undefined;
        if (value === undefined || r.Type === 'AWS::Lambda::Permission') continue;
        if (prop === 'ThingGroupName' && options.thingGroupName) continue;
        if (prop === 'TemplateName' && options.templateName) continue;
        expect(value['Fn::Sub'], `${id}.${prop}`).toContain('${AWS::StackName}');
        if (r.Type === 'AWS::IAM::Role') expect(value['Fn::Sub'], `${id}.${prop}`).toContain('${AWS::Region}');
      }
    }
  });

  it('gives two stacks disjoint names, and one stack in two regions disjoint (global) IAM names', () => {
    const names = (stack: string, region: string, types: (t: string) => boolean) => {
      const ctx = stackContext(template, stackParameterValues(options), stack, region, ACCOUNT);
      return Object.entries(template.Resources)
        .filter(([, r]) => types(r.Type))
        .map(([id]) => ctx.refs[id])
        .filter((n): n is string => n !== undefined && n !== options.templateName && n !== options.thingGroupName);
    };
    const any = () => true;
    const a = names('fp-a', REGION, any);
    expect(a.length).toBeGreaterThanOrEqual(7);
    expect(names('fp-b', REGION, any).filter((n) => a.includes(n))).toEqual([]);
    const iam = (t: string) => t.startsWith('AWS::IAM::');
    expect(names('fp-a', REGION, iam)).toHaveLength(5);
    expect(names('fp-a', 'us-east-2', iam).filter((n) => names('fp-a', REGION, iam).includes(n))).toEqual([]);
  });

  it('runs the shared hook source on the current Node.js runtime, inline and small enough', () => {
    const hook = template.Resources.PreProvisioningHook!;
    expect(hook.Properties.Runtime).toBe(LAMBDA_RUNTIME);
    // nodejs24.x: deprecated Apr 30, 2028 ("Building Lambda functions with Node.js"); 22.x goes in 2027.
    expect(LAMBDA_RUNTIME).toBe('nodejs24.x');
    const zip = (hook.Properties.Code as { ZipFile: string }).ZipFile;
    expect(zip).toBe(PRE_PROVISIONING_HOOK_SOURCE);
    // CloudFormation no longer limits inline code to 4096 characters (AWS::Lambda::Function Code,
    // ZipFile); what limits it is CreateChangeSet's TemplateBody: 51,200 bytes for the whole stack.
    expect(zip.length).toBeLessThan(12_000);
    expect(Buffer.byteLength(JSON.stringify(template))).toBeLessThan(51_200);
    const endpoints = template.Resources.EndpointsFunction!.Properties;
    expect(endpoints.Runtime).toBe(LAMBDA_RUNTIME);
    expect((endpoints.Code as { ZipFile: string }).ZipFile.length).toBeLessThan(4096);
  });

  it('limits the hook to AWS IoT of this account in the documented confused-deputy form (defect 7)', () => {
    const permission = template.Resources.PreProvisioningHookPermission!.Properties;
    expect(permission.Principal).toBe('iot.amazonaws.com');
    expect(permission.SourceAccount).toEqual({ Ref: 'AWS::AccountId' });
    // "Cross-service confused deputy prevention" (AWS IoT): arn:aws:iot:region:account-id:*
    expect(permission.SourceArn).toEqual({ 'Fn::Sub': 'arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:*' });
  });

  it('gives every service role aws:SourceAccount, except the credentials provider, which documents none (defect 9)', () => {
    for (const [id, r] of Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::IAM::Role')) {
      const [statement] = (r.Properties.AssumeRolePolicyDocument as { Statement: { Principal: { Service: string }; Condition?: Record<string, Record<string, unknown>> }[] }).Statement;
      if (statement!.Principal.Service === 'credentials.iot.amazonaws.com') {
        expect(statement!.Condition, id).toBeUndefined();
        continue;
      }
      expect(statement!.Condition?.StringEquals?.['aws:SourceAccount'], id).toEqual({ Ref: 'AWS::AccountId' });
    }
    const trust = (id: string) => JSON.stringify(template.Resources[id]!.Properties.AssumeRolePolicyDocument);
    expect(trust('ProvisioningRole')).toContain('"aws:SourceArn":{"Fn::Sub":"arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:*"}');
    expect(trust('ClaimRetirementRole')).toContain(':scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${AWS::StackName}-claims/*');
  });

  it('lets the token exchange role write Greengrass logs and read only the named artifact buckets (defect 5)', () => {
    const ctx = stackContext(template, stackParameterValues(options), 'fp-a', REGION, ACCOUNT);
    const text = JSON.stringify(resolve(template.Resources.TokenExchangeRole!.Properties.Policies, ctx));
    expect(text).toContain(`"Action":"logs:CreateLogGroup","Resource":"arn:aws:logs:${REGION}:${ACCOUNT}:log-group:greengrass/systemLogs:*"`);
    expect(text).toContain(`"Resource":"arn:aws:logs:${REGION}:${ACCOUNT}:log-group:greengrass/systemLogs:log-stream:\${credentials-iot:ThingName}"`);
    const buckets = options.artifactBuckets ?? [];
    if (buckets.length) expect(text).toContain(`"Action":"s3:GetObject","Resource":[${buckets.map((b) => `"arn:aws:s3:::${b}/*"`).join(',')}]`);
    else expect(text).not.toContain('s3:GetObject');
  });

  it('bounds the endpoints custom resource with ServiceTimeout (defect 9)', () => {
    const timeout = template.Resources.Endpoints!.Properties.ServiceTimeout as number;
    expect(timeout).toBeGreaterThan(template.Resources.EndpointsFunction!.Properties.Timeout as number);
    expect(timeout).toBeLessThan(3600);
  });

  it('retains the device policy when the stack is deleted, for destroy to handle (defect 2)', () => {
    expect(template.Resources.DevicePolicy).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  it('resolves to a provisioning template the IoT template engine accepts', () => {
    const ctx = stackContext(template, stackParameterValues(options), 'fp-a', REGION, ACCOUNT);
    const props = template.Resources.ProvisioningTemplate!.Properties;
    const body = resolveString(props.TemplateBody, ctx);
    const plan = evaluateTemplate(parseTemplate(body), { DeviceId: 'aabbccddeeff' }, { 'AWS::IoT::Certificate::Id': 'c'.repeat(64) });
    expect(plan.thing?.thingName).toBe('fp-yocto-aabbccddeeff');
    expect(plan.thing?.thingGroups).toEqual([options.thingGroupName ?? 'fp-a-devices']);
    expect(plan.certificate).toEqual({ certificateId: 'c'.repeat(64), status: 'ACTIVE' });
    expect(plan.policies).toEqual([{ policyName: 'fp-a-device' }]);
    expect(resolveString(props.TemplateName, ctx)).toBe(options.templateName ?? 'fp-a-provisioning');
  });

  it('has a claim policy for exactly the prefixed client ids and, per action, the topics the agent uses (defect 9)', () => {
    const ctx = stackContext(template, stackParameterValues(options), 'fp-a', REGION, ACCOUNT);
    const doc = parsePolicyDocument(JSON.stringify(resolve(template.Resources.ClaimPolicy!.Properties.PolicyDocument, ctx)));
    const tpl = options.templateName ?? 'fp-a-provisioning';
    const can = (action: IotAction, name: string, clientId = 'fleetprov-aabbccddeeff') =>
      isAllowed(doc, action, resourceArnFor(action, name, REGION, ACCOUNT), { clientId, certificateId: 'x' });
    expect(can('iot:Connect', 'fleetprov-aabbccddeeff')).toBe(true);
    expect(can('iot:Connect', 'other-aabbccddeeff')).toBe(false);
    for (const topic of ['$aws/certificates/create-from-csr/json', `$aws/provisioning-templates/${tpl}/provision/json`]) {
      expect(can('iot:Publish', topic)).toBe(true);
      expect(can('iot:Receive', topic)).toBe(false);
      expect(can('iot:Subscribe', topic)).toBe(false);
      for (const reply of ['accepted', 'rejected']) {
        expect(can('iot:Subscribe', `${topic}/${reply}`)).toBe(true);
        expect(can('iot:Receive', `${topic}/${reply}`)).toBe(true);
        expect(can('iot:Publish', `${topic}/${reply}`)).toBe(false);
      }
    }
    // The keys flow (the key made in the cloud) and the CBOR forms are never used.
    for (const action of ['iot:Publish', 'iot:Subscribe', 'iot:Receive'] as IotAction[]) {
      expect(can(action, '$aws/certificates/create/json')).toBe(false);
      expect(can(action, '$aws/certificates/create-from-csr/cbor')).toBe(false);
    }
    expect(can('iot:Publish', '$aws/provisioning-templates/someone-else/provision/json')).toBe(false);
    expect(can('iot:Publish', '$aws/things/x/shadow/update')).toBe(false);
    expect(can('iot:Subscribe', '#')).toBe(false);
  });

  it('has a device policy for the fleet, and for Greengrass exactly AWS\'s minimal core device policy (defect 1)', () => {
    const ctx = stackContext(template, stackParameterValues(options), 'fp-a', REGION, ACCOUNT);
    const document = resolve(template.Resources.DevicePolicy!.Properties.PolicyDocument, ctx) as { Statement: { Action: string | string[]; Resource: string | string[] }[] };
    const doc = parsePolicyDocument(JSON.stringify(document));
    const me = { clientId: 'fp-yocto-aabbccddeeff', thingName: 'fp-yocto-aabbccddeeff', certificateId: 'x' };
    const can = (action: IotAction, name: string, who = me) => isAllowed(doc, action, resourceArnFor(action, name, REGION, ACCOUNT), who);
    expect(can('iot:Connect', me.thingName)).toBe(true);
    expect(can('iot:Publish', `$aws/things/${me.thingName}/shadow/update`)).toBe(true);
    expect(can('iot:Subscribe', `$aws/things/${me.thingName}/jobs/notify-next`)).toBe(true);
    expect(can('iot:Connect', 'intruder')).toBe(false);
    expect(can('iot:Publish', '$aws/things/intruder/shadow/update')).toBe(false);
    const text = JSON.stringify(document);
    expect(text).toContain(':rolealias/fp-a-token-exchange');
    if (!options.greengrass) {
      expect(text).not.toContain('greengrass');
      expect(can('iot:Publish', '$aws/things/fp-yocto-001122334455/shadow/update')).toBe(false);
      return;
    }
    // "Thing policy variables (iot:Connection.Thing.*) aren't supported for ... core devices or
    // Greengrass data plane operations": the fleet's prefix instead, and the data plane on "*".
    expect(text).not.toContain('iot:Connection.Thing');
    expect(can('iot:Connect', `${me.thingName}-suffix`)).toBe(true);
    expect(can('iot:Publish', `$aws/things/${me.thingName}/greengrass/health/json`)).toBe(true);
    expect(can('iot:Publish', `$aws/things/${me.thingName}/greengrassv2/health/json`)).toBe(true);
    const statement = (action: string) => document.Statement.find((s) => [s.Action].flat().includes(action));
    for (const action of GREENGRASS_DATA_PLANE_ACTIONS) expect(statement(action)?.Resource, action).toBe('*');
    expect(statement('iot:GetThingShadow')).toEqual({
      Effect: 'Allow',
      Action: ['iot:GetThingShadow', 'iot:UpdateThingShadow', 'iot:DeleteThingShadow'],
      Resource: `arn:aws:iot:${REGION}:${ACCOUNT}:thing/fp-yocto-*`,
    });
  });

  it('writes the thing-name prefix into the provisioning template, so RegisterThing parameters cannot change it (defect 4)', () => {
    const ctx = stackContext(template, stackParameterValues(options), 'fp-a', REGION, ACCOUNT);
    const body = resolveString(template.Resources.ProvisioningTemplate!.Properties.TemplateBody, ctx);
    expect(Object.keys(JSON.parse(body).Parameters).filter((p) => !(options.thingAttributes ?? []).includes(p))).toEqual(['DeviceId', 'AWS::IoT::Certificate::Id']);
    const plan = evaluateTemplate(parseTemplate(body), { DeviceId: 'aabbccddeeff', ThingNamePrefix: 'victim-' }, { 'AWS::IoT::Certificate::Id': 'c'.repeat(64) });
    expect(plan.thing?.thingName).toBe('fp-yocto-aabbccddeeff');
  });
});
