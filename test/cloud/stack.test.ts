import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { evaluateTemplate, parseTemplate } from '../../src/emulator/template-engine.ts';
import { isAllowed, parsePolicyDocument, resourceArnFor, type IotAction } from '../../src/emulator/policy.ts';
import { resolve, resolveString } from '../../src/cloud/intrinsics.ts';
import { stackContext } from '../../src/cloud/providers/local.ts';
import { buildStack, LAMBDA_RUNTIME, RESOURCE_STAR_ACTIONS, stackParameterValues, type CfnTemplate, type StackOptions } from '../../src/cloud/stack.ts';
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
  ['standalone, custom names, allow-list', { ...defaultStackOptions(), greengrass: false, templateName: 'my-tpl', thingGroupName: 'my-group', allowList: ['aabbccddeeff'] }],
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
    expect(names('fp-a', REGION, iam)).toHaveLength(4);
    expect(names('fp-a', 'us-east-2', iam).filter((n) => names('fp-a', REGION, iam).includes(n))).toEqual([]);
  });

  it('runs the shared hook source on the current Node.js runtime, inline and small enough', () => {
    const hook = template.Resources.PreProvisioningHook!;
    expect(hook.Properties.Runtime).toBe(LAMBDA_RUNTIME);
    expect(Number(LAMBDA_RUNTIME.match(/^nodejs(\d+)\.x$/)![1])).toBeGreaterThanOrEqual(22);
    const zip = (hook.Properties.Code as { ZipFile: string }).ZipFile;
    expect(zip).toBe(PRE_PROVISIONING_HOOK_SOURCE);
    expect(zip.length).toBeLessThan(4096);
    const endpoints = template.Resources.EndpointsFunction!.Properties;
    expect(endpoints.Runtime).toBe(LAMBDA_RUNTIME);
    expect((endpoints.Code as { ZipFile: string }).ZipFile.length).toBeLessThan(4096);
    const permission = template.Resources.PreProvisioningHookPermission!.Properties;
    expect(permission.SourceAccount).toEqual({ Ref: 'AWS::AccountId' });
    expect(JSON.stringify(permission.SourceArn)).toContain(':provisioningtemplate/');
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

  it('has a claim policy for exactly the prefixed client ids and this template\'s topics', () => {
    const ctx = stackContext(template, stackParameterValues(options), 'fp-a', REGION, ACCOUNT);
    const doc = parsePolicyDocument(JSON.stringify(resolve(template.Resources.ClaimPolicy!.Properties.PolicyDocument, ctx)));
    const tpl = options.templateName ?? 'fp-a-provisioning';
    const can = (action: IotAction, name: string, clientId = 'fleetprov-aabbccddeeff') =>
      isAllowed(doc, action, resourceArnFor(action, name, REGION, ACCOUNT), { clientId, certificateId: 'x' });
    expect(can('iot:Connect', 'fleetprov-aabbccddeeff')).toBe(true);
    expect(can('iot:Connect', 'other-aabbccddeeff')).toBe(false);
    for (const topic of ['$aws/certificates/create-from-csr/json', '$aws/certificates/create/json', `$aws/provisioning-templates/${tpl}/provision/json`]) {
      expect(can('iot:Publish', topic)).toBe(true);
      for (const reply of ['accepted', 'rejected']) {
        expect(can('iot:Subscribe', `${topic}/${reply}`)).toBe(true);
        expect(can('iot:Receive', `${topic}/${reply}`)).toBe(true);
      }
    }
    expect(can('iot:Publish', '$aws/provisioning-templates/someone-else/provision/json')).toBe(false);
    expect(can('iot:Publish', '$aws/things/x/shadow/update')).toBe(false);
    expect(can('iot:Subscribe', '#')).toBe(false);
  });

  it('has a device policy scoped to the connected thing', () => {
    const ctx = stackContext(template, stackParameterValues(options), 'fp-a', REGION, ACCOUNT);
    const document = resolve(template.Resources.DevicePolicy!.Properties.PolicyDocument, ctx);
    const doc = parsePolicyDocument(JSON.stringify(document));
    const me = { clientId: 'fp-yocto-aabbccddeeff', thingName: 'fp-yocto-aabbccddeeff', certificateId: 'x' };
    const can = (action: IotAction, name: string) => isAllowed(doc, action, resourceArnFor(action, name, REGION, ACCOUNT), me);
    expect(can('iot:Connect', me.thingName)).toBe(true);
    expect(can('iot:Connect', 'fp-yocto-001122334455')).toBe(false);
    expect(can('iot:Publish', `$aws/things/${me.thingName}/shadow/update`)).toBe(true);
    expect(can('iot:Subscribe', `$aws/things/${me.thingName}/jobs/notify-next`)).toBe(true);
    expect(can('iot:Publish', '$aws/things/fp-yocto-001122334455/shadow/update')).toBe(false);
    const text = JSON.stringify(document);
    expect(text).toContain(':rolealias/fp-a-token-exchange');
    expect(text.includes('greengrass:')).toBe(options.greengrass);
  });
});
