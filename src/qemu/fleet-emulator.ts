// The emulator on the host, set up the way the cloud stack sets up AWS IoT (provisioning template
// from src/cloud/provisioning-template.ts with the shared MAC-checking hook, claim and device
// policies, a thing group) plus a claim certificate written to files for the claim recipe.
// Its log is kept as lines that a scenario can wait on (event driven), and it can be cut and
// started again on the same port and state directory, as a real outage would look to a device.
import { join } from 'node:path';
import { startEmulator, EMULATOR_REGION, type Emulator } from '../emulator/index.ts';
import { provisioningTemplateBody } from '../cloud/provisioning-template.ts';
import { PRE_PROVISIONING_HOOK_SOURCE, DEVICE_ID_PARAMETER, HOOK_ENV } from '../shared/pre-provisioning-hook.ts';
import { projectPaths, writeClaimFiles } from '../cloud/project.ts';
import { LineLog } from './line-log.ts';

export const QEMU_TEMPLATE = 'fp-qemu-template';
export const QEMU_THING_PREFIX = 'fp-';
export const QEMU_CLIENT_ID_PREFIX = 'fleetprov-';
const CLAIM_POLICY = 'fp-qemu-claim-policy';
const DEVICE_POLICY = 'fp-qemu-device-policy';
const THING_GROUP = 'fp-qemu-fleet';
const ARN = 'arn:aws:iot:*:*';

/** Pure: the stack's template body with its placeholders filled in for this setup. */
export function qemuTemplateBody(): string {
  return JSON.stringify(provisioningTemplateBody())
    .replaceAll('${ThingNamePrefix}', QEMU_THING_PREFIX)
    .replaceAll('${ThingGroupName}', THING_GROUP)
    .replaceAll('${DevicePolicyName}', DEVICE_POLICY);
}

function claimPolicy(): string {
  const topics = ['$aws/certificates/create/*', '$aws/certificates/create-from-csr/*', `$aws/provisioning-templates/${QEMU_TEMPLATE}/provision/*`];
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'iot:Connect', Resource: `${ARN}:client/${QEMU_CLIENT_ID_PREFIX}*` },
      { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: topics.map((t) => `${ARN}:topic/${t}`) },
      { Effect: 'Allow', Action: 'iot:Subscribe', Resource: topics.map((t) => `${ARN}:topicfilter/${t}`) },
    ],
  });
}

function devicePolicy(): string {
  const thing = '${iot:Connection.Thing.ThingName}';
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'iot:Connect', Resource: `${ARN}:client/${thing}` },
      { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: `${ARN}:topic/things/${thing}/*` },
      { Effect: 'Allow', Action: 'iot:Subscribe', Resource: `${ARN}:topicfilter/things/${thing}/*` },
    ],
  });
}

export interface FleetEmulator {
  /** The running emulator (replaced by `restart`). */
  readonly current: Emulator;
  readonly port: number;
  readonly region: string;
  /** Host directory with CLAIM_FILES, as FLEETPROV_CLAIM_DIR would hold them. */
  readonly claimDir: string;
  readonly log: LineLog;
  readonly running: boolean;
  /** The outage: stops listening and drops every connection. */
  cut(): Promise<void>;
  /** Back on the same port with the same state (CA, registry, template). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startFleetEmulator(workDir: string): Promise<FleetEmulator> {
  const stateDir = join(workDir, 'emulator');
  const log = new LineLog();
  const start = (port: number) => startEmulator({ port, dir: stateDir, log: (line) => log.push(line) });
  let emulator = await start(0);
  let running = true;
  const port = emulator.port;
  const { control } = emulator;
  await control.createThingGroup(THING_GROUP);
  await control.createPolicy(CLAIM_POLICY, claimPolicy());
  await control.createPolicy(DEVICE_POLICY, devicePolicy());
  await control.createProvisioningTemplate({
    templateName: QEMU_TEMPLATE,
    templateBody: qemuTemplateBody(),
    enabled: true,
    provisioningRoleArn: 'arn:aws:iam::000000000000:role/fp-qemu-provisioning',
    preProvisioningHook: { source: PRE_PROVISIONING_HOOK_SOURCE, env: { [HOOK_ENV.parameter]: DEVICE_ID_PARAMETER } },
  });
  const issued = await emulator.issueClaim({ policyName: CLAIM_POLICY });
  // The claim directory exactly as `init` writes it (<dir>/claim, key 0600).
  const paths = projectPaths(workDir);
  await writeClaimFiles(paths, { certPem: issued.certificatePem, keyPem: issued.privateKeyPem!, rootCaPem: emulator.caPem });
  const { claimDir } = paths;

  return {
    get current() {
      return emulator;
    },
    get running() {
      return running;
    },
    port,
    region: EMULATOR_REGION,
    claimDir,
    log,
    async cut() {
      if (!running) return;
      running = false;
      await emulator.close();
    },
    async restart() {
      if (running) return;
      emulator = await start(port);
      running = true;
    },
    async close() {
      if (running) await emulator.close();
      running = false;
    },
  };
}
