import { defineCommand } from 'citty';
import path from 'node:path';
import pc from 'picocolors';
import { runInit } from '../../cloud/init.ts';
import { projectPaths, readState } from '../../cloud/project.ts';
import {
  checkPort,
  checkRegion,
  checkStackName,
  checkTemplateName,
  checkThingGroup,
  checkThingPrefix,
  DEFAULT_LOCAL_PORT,
  DEFAULT_STACK_NAME,
  parseArtifactBuckets,
  parseDeviceIdSource,
  parseThingAttributes,
} from '../../cloud/settings.ts';
import { TEMPLATE_FILE, writeStackYaml } from '../../cloud/template-yaml.ts';
import { createUi } from '../ui.ts';

export default defineCommand({
  meta: {
    name: 'init',
    description: [
      'Create or update the fleet-provisioning stack and the claim credentials for a Yocto project.',
      '',
      '  fp-yocto init                         asks, then deploys to the AWS account of your AWS CLI setup',
      '  fp-yocto init --yes --region eu-west-1 --allow-list devices.csv   only these devices (fp-yocto devices manages the list)',
      '  fp-yocto init --local --yes           no AWS account: a local IoT Core emulator instead',
      `  fp-yocto init --write-template ${TEMPLATE_FILE}`,
      '  fp-yocto init --print-operator-policy  the IAM policy the AWS commands need (docs/cloud.md)',
      '',
      'Writes claim/ (claim.key.pem is 0600 and git-ignored), conf/fleetprovisioning.conf.sample',
      'for local.conf, the layer meta-fleetprovisioning/ and .fp-yocto/state.json. Re-running',
      'is safe: it reuses a valid claim certificate and says what changed. Credentials and',
      'region come from the AWS CLI setup (AWS_PROFILE, AWS_REGION or AWS_DEFAULT_REGION,',
      '~/.aws/config).',
    ].join('\n'),
  },
  args: {
    dir: { type: 'string', description: 'Project directory (holds meta-fleetprovisioning/, claim/, .fp-yocto/)', default: '.' },
    local: { type: 'boolean', description: 'Use the local emulator (started in the background if needed) instead of AWS' },
    yes: { type: 'boolean', alias: 'y', description: 'Never prompt; accept defaults and confirm (also when not on a terminal)' },
    'stack-name': { type: 'string', description: `CloudFormation stack name, also in every resource name (default ${DEFAULT_STACK_NAME})` },
    region: { type: 'string', description: 'AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, then the profile)' },
    profile: { type: 'string', description: 'AWS CLI profile for credentials and region' },
    'template-name': { type: 'string', description: 'Provisioning template name (default <stack>-provisioning)' },
    'thing-prefix': { type: 'string', description: 'Thing name = prefix + device MAC (default <stack>-)' },
    'thing-group': { type: 'string', description: 'Thing group for provisioned devices (default <stack>-devices)' },
    'allow-list': {
      type: 'string',
      description: 'Only listed devices may provision: import this file (one id a line, or CSV with a deviceId header) or aa:bb:cc:dd:ee:ff,... into the device table; --no-allow-list lets every well-formed id provision',
    },
    'one-identity': {
      type: 'boolean',
      description: 'A device id provisions once; again only after `fp-yocto devices reset ID` (default)',
      negativeDescription: 'Let a device id provision again and again (replacing its certificate)',
    },
    'device-id-source': { type: 'string', description: 'Where devices read their id: mac (default), machine-id, device-tree-serial, dmi-serial, file' },
    'thing-attributes': { type: 'string', description: 'Up to two attribute columns of the device list (comma-separated) that become thing attributes' },
    greengrass: { type: 'boolean', description: 'Devices run Greengrass nucleus lite (default)', negativeDescription: 'Standalone devices: no Greengrass permissions or config' },
    'artifact-bucket': { type: 'string', description: 'S3 buckets (comma-separated) whose component artifacts devices may read' },
    port: { type: 'string', description: `--local: the emulator's MQTT port (default ${DEFAULT_LOCAL_PORT})` },
    'write-template': { type: 'string', description: 'Only write the CloudFormation template (YAML) to this file, deploy nothing' },
    'print-operator-policy': { type: 'boolean', description: 'Only print the IAM policy init, status, rotate-claim and destroy need' },
  },
  async run({ args }) {
    const ui = createUi({ yes: Boolean(args.yes) });
    const settings = {
      greengrass: args.greengrass as boolean | undefined,
      templateName: args['template-name'] === undefined ? undefined : checkTemplateName(args['template-name']),
      thingGroupName: args['thing-group'] === undefined ? undefined : checkThingGroup(args['thing-group']),
      thingNamePrefix: args['thing-prefix'] === undefined ? undefined : checkThingPrefix(args['thing-prefix']),
      // citty gives --no-allow-list as false.
      requireAllowList: (args['allow-list'] as string | boolean | undefined) === false ? false : undefined,
      oneIdentity: args['one-identity'] as boolean | undefined,
      deviceIdSource: args['device-id-source'] === undefined ? undefined : parseDeviceIdSource(args['device-id-source']),
      thingAttributes: args['thing-attributes'] === undefined ? undefined : parseThingAttributes(args['thing-attributes']),
      artifactBuckets: args['artifact-bucket'] === undefined ? undefined : parseArtifactBuckets(args['artifact-bucket']),
    };
    if (args['write-template'] || args['print-operator-policy']) {
      const { defaultSettings } = await import('../../cloud/init.ts');
      const stackName = checkStackName(args['stack-name'] ?? DEFAULT_STACK_NAME);
      const options = { ...defaultSettings(stackName), ...Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined)) };
      if (args['print-operator-policy']) {
        const { operatorPolicy } = await import('../../cloud/operator-policy.ts');
        const region = args.region === undefined ? undefined : checkRegion(args.region);
        console.log(JSON.stringify(operatorPolicy({ stackName, options, region }), null, 2));
        return;
      }
      const file = path.resolve(args['write-template']!);
      await writeStackYaml(file, options);
      ui.success(`wrote ${file}`);
      return;
    }

    const region = args.region === undefined ? undefined : checkRegion(args.region);
    const port = args.port === undefined ? undefined : checkPort(args.port);
    const paths = projectPaths(args.dir);
    // A project that has been set up keeps its provider and stack unless told otherwise.
    const previous = await readState(paths);

    ui.intro('fp-yocto init');
    const local =
      Boolean(args.local) ||
      previous?.provider === 'local' ||
      (!previous &&
        (await ui.choose('Where should the stack go?', [
          { value: 'aws', label: 'AWS', hint: 'the account and region of your AWS CLI setup' },
          { value: 'local', label: 'Local emulator', hint: 'no AWS account needed; for trying things out and tests' },
        ])) === 'local');
    const stackName = checkStackName(
      args['stack-name'] ??
        previous?.stackName ??
        (await ui.text('Stack name (also prefixes every resource name)', DEFAULT_STACK_NAME, stackNameProblem)),
    );
    if (!previous && ui.interactive && settings.greengrass === undefined) {
      settings.greengrass = await ui.confirm('Do the devices run Greengrass nucleus lite?');
    }
    const allowList = typeof args['allow-list'] === 'string' ? args['allow-list'] : undefined;
    const result = await runInit({ dir: args.dir, local, stackName, region, profile: args.profile, port, settings, allowList }, ui);
    const { state } = result;
    if (result.changed.length === 0) ui.success('no changes: the stack, the claim certificate and the files are up to date');
    else for (const line of result.changed) ui.success(line);
    ui.outro(
      [
        `data endpoint  ${state.endpoints.data}:${state.endpoints.port}`,
        `template       ${state.names.templateName}`,
        `claim files    ${paths.claimDir}`,
        `layer          ${paths.layer}`,
        `next: in your build directory, ${pc.bold(`bitbake-layers add-layer ${paths.layer}`)}`,
        `      and add ${pc.bold(`require ${paths.confSample}`)} to conf/local.conf`,
      ].join('\n'),
    );
  },
});


const stackNameProblem = (value: string): string | undefined =>
  /^[A-Za-z][A-Za-z0-9-]{0,22}$/.test(value) ? undefined : 'a letter then up to 22 letters, digits or dashes';
