// The operator's IAM policy against every AWS SDK command the provider can send (read from the
// provider's source, so a new call cannot be forgotten) and every resource type CloudFormation
// creates with the operator's credentials.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLOUDFORMATION_HANDLER_ACTIONS, operatorPolicy, type IamPolicy } from '../../src/cloud/operator-policy.ts';
import { buildStack } from '../../src/cloud/stack.ts';
import { defaultStackOptions } from '../../src/cloud/template-yaml.ts';
import { wildcardMatch } from '../../src/emulator/policy.ts';
import { ROOT } from '../helpers/run.ts';

// The IAM service prefix of each SDK client package.
const PREFIX: Record<string, string> = {
  'client-cloudformation': 'cloudformation',
  'client-iot': 'iot',
  'client-scheduler': 'scheduler',
  'client-cloudwatch-logs': 'logs',
  'client-dynamodb': 'dynamodb',
};

/** "service:Action" for every `new XCommand(` in the AWS provider, by the package X comes from. */
async function sdkActions(): Promise<string[]> {
  const files = ['src/cloud/providers/aws.ts', 'src/cloud/devices/device-store.ts'];
  const source = (await Promise.all(files.map((f) => readFile(path.join(ROOT, f), 'utf8')))).join('\n');
  const packageOf = new Map<string, string>();
  for (const m of source.matchAll(/import\s*\{([^}]*)\}\s*from\s*'@aws-sdk\/([^']+)'/g)) {
    for (const name of m[1]!.split(',').map((n) => n.trim())) if (name.endsWith('Command')) packageOf.set(name, m[2]!);
  }
  const used = [...new Set([...source.matchAll(/new (\w+Command)\(/g)].map((m) => m[1]!))];
  return used.map((command) => {
    const prefix = PREFIX[packageOf.get(command) ?? ''];
    if (!prefix) throw new Error(`${command}: no IAM prefix known for its package`);
    return `${prefix}:${command.replace(/Command$/, '')}`;
  });
}

/** Allowed when some statement names the action and a resource pattern matches (no Deny here). */
function allows(policy: IamPolicy, action: string, resource?: string): boolean {
  return policy.Statement.some(
    (s) =>
      s.Action.some((a) => wildcardMatch(a, action, true)) &&
      (resource === undefined || [s.Resource].flat().some((r) => wildcardMatch(r, resource))),
  );
}

const POLICY = operatorPolicy({ stackName: 'fp-yocto', options: defaultStackOptions(), region: 'eu-west-1', account: '123456789012' });

describe('fp-yocto init --print-operator-policy', () => {
  it('grants every SDK call the AWS provider makes', async () => {
    const actions = await sdkActions();
    expect(actions.length).toBeGreaterThanOrEqual(20);
    expect(actions.filter((a) => !allows(POLICY, a))).toEqual([]);
  });

  it('grants what CloudFormation does as the operator for every resource type of the stack', () => {
    const types = [...new Set(Object.values(buildStack(defaultStackOptions()).Resources).map((r) => r.Type))];
    expect(types.filter((t) => !CLOUDFORMATION_HANDLER_ACTIONS[t])).toEqual([]);
    const missing = types.flatMap((t) => CLOUDFORMATION_HANDLER_ACTIONS[t]!).filter((a) => !allows(POLICY, a));
    expect(missing).toEqual([]);
  });

  it('is scoped to the stack: its names are allowed, other names are not', () => {
    const arn = (service: string, rest: string) => `arn:aws:${service}:eu-west-1:123456789012:${rest}`;
    const yes: [string, string][] = [
      ['cloudformation:DeleteStack', arn('cloudformation', 'stack/fp-yocto/abc')],
      ['iam:CreateRole', 'arn:aws:iam::123456789012:role/fp-yocto-eu-west-1-hook'],
      ['iam:PassRole', 'arn:aws:iam::123456789012:role/fp-yocto-eu-west-1-claim-retirement'],
      ['lambda:CreateFunction', arn('lambda', 'function:fp-yocto-pre-provisioning-hook')],
      ['iot:DeletePolicy', arn('iot', 'policy/fp-yocto-device')],
      ['iot:CreateProvisioningTemplate', arn('iot', 'provisioningtemplate/fp-yocto-provisioning')],
      ['iot:DeleteThing', arn('iot', 'thing/fp-yocto-aabbccddeeff')],
      ['scheduler:CreateSchedule', arn('scheduler', 'schedule/fp-yocto-claims/retire-abc')],
      ['logs:DeleteLogGroup', arn('logs', 'log-group:/aws/lambda/fp-yocto-iot-endpoints')],
    ];
    for (const [action, resource] of yes) expect(allows(POLICY, action, resource), `${action} ${resource}`).toBe(true);
    const no: [string, string][] = [
      ['cloudformation:DeleteStack', arn('cloudformation', 'stack/production/abc')],
      ['iam:CreateRole', 'arn:aws:iam::123456789012:role/admin'],
      ['iam:PassRole', 'arn:aws:iam::123456789012:role/admin'],
      ['lambda:InvokeFunction', arn('lambda', 'function:payments')],
      ['iot:DeletePolicy', arn('iot', 'policy/other-device')],
      ['iot:DeleteThing', arn('iot', 'thing/other-aabbccddeeff')],
      ['scheduler:CreateSchedule', arn('scheduler', 'schedule/default/x')],
      ['logs:DeleteLogGroup', arn('logs', 'log-group:/aws/lambda/payments')],
    ];
    for (const [action, resource] of no) expect(allows(POLICY, action, resource), `${action} ${resource}`).toBe(false);
    const passRole = POLICY.Statement.find((s) => s.Action.includes('iam:PassRole'))!;
    expect(passRole.Condition).toEqual({ StringEquals: { 'iam:PassedToService': ['lambda.amazonaws.com', 'iot.amazonaws.com', 'scheduler.amazonaws.com'] } });
    // No wildcard actions, and "*" only where IAM has no resource-level permissions.
    for (const s of POLICY.Statement) {
      for (const a of s.Action) expect(a).not.toContain('*');
      if (s.Resource === '*') expect(s.Action.sort()).toEqual(['iot:CreateCertificateFromCsr', 'iot:DescribeEndpoint', 'kms:ListAliases']);
    }
  });

  it('follows custom template and group names', () => {
    const policy = operatorPolicy({ stackName: 'fleet', options: { ...defaultStackOptions(), templateName: 'tpl', thingGroupName: 'grp', thingNamePrefix: 'dev-' } });
    expect(allows(policy, 'iot:DeleteProvisioningTemplate', 'arn:aws:iot:us-east-1:1:provisioningtemplate/tpl')).toBe(true);
    expect(allows(policy, 'iot:DeleteThingGroup', 'arn:aws:iot:us-east-1:1:thinggroup/grp')).toBe(true);
    expect(allows(policy, 'iot:DeleteThing', 'arn:aws:iot:us-east-1:1:thing/dev-aabbccddeeff')).toBe(true);
  });
});
