// A running emulator with the setup the cloud stack deploys: a provisioning template (thing name =
// prefix + DeviceId, the shared MAC-checking hook), a device policy scoped to the thing name, a
// claim policy for the provisioning topics, and a claim certificate and key written to files.
import { execa } from 'execa';
import path from 'node:path';
import { createInterface } from 'node:readline';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { onTestFinished } from 'vitest';
import { projectPaths, writeClaimFiles } from '../../src/cloud/project.ts';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../src/emulator/index.ts';
import { PRE_PROVISIONING_HOOK_SOURCE, DEVICE_ID_PARAMETER, HOOK_ENV } from '../../src/shared/pre-provisioning-hook.ts';
import { accepted, rejected } from '../../src/shared/protocol.ts';
import { CLI } from './run.ts';
import { tmpDir } from './tmp.ts';

export const TEMPLATE_NAME = 'fp-test-template';
export const CLAIM_POLICY = 'fp-test-claim-policy';
export const DEVICE_POLICY = 'fp-test-device-policy';
export const THING_NAME_PREFIX = 'fp-';
export const CLIENT_ID_PREFIX = 'fleetprov-';

const ARN = 'arn:aws:iot:*:*';

export function claimPolicyDocument(templateName = TEMPLATE_NAME): string {
  const topics = ['$aws/certificates/create/*', '$aws/certificates/create-from-csr/*', `$aws/provisioning-templates/${templateName}/provision/*`];
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'iot:Connect', Resource: `${ARN}:client/${CLIENT_ID_PREFIX}*` },
      { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: topics.map((t) => `${ARN}:topic/${t}`) },
      { Effect: 'Allow', Action: 'iot:Subscribe', Resource: topics.map((t) => `${ARN}:topicfilter/${t}`) },
    ],
  });
}

export function devicePolicyDocument(): string {
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

export function templateBody(devicePolicy = DEVICE_POLICY): string {
  return JSON.stringify({
    Parameters: {
      [DEVICE_ID_PARAMETER]: { Type: 'String' },
      ThingNamePrefix: { Type: 'String', Default: THING_NAME_PREFIX },
      'AWS::IoT::Certificate::Id': { Type: 'String' },
    },
    Resources: {
      thing: {
        Type: 'AWS::IoT::Thing',
        Properties: {
          ThingName: { 'Fn::Join': ['', [{ Ref: 'ThingNamePrefix' }, { Ref: DEVICE_ID_PARAMETER }]] },
          AttributePayload: { deviceId: { Ref: DEVICE_ID_PARAMETER } },
        },
        OverrideSettings: { AttributePayload: 'MERGE', ThingTypeName: 'REPLACE', ThingGroups: 'DO_NOTHING' },
      },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'ACTIVE' },
      },
      policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: devicePolicy } },
    },
    DeviceConfiguration: { thingNamePrefix: { Ref: 'ThingNamePrefix' } },
  });
}

export interface TestEmulator {
  emulator: Emulator;
  dir: string;
  templateName: string;
  claim: { certificateId: string; certPem: string; keyPem: string; certPath: string; keyPath: string; rootCaPath: string };
}

export type ClaimFiles = TestEmulator['claim'];

/**
 * The default fleet on a running emulator, as the cloud stack deploys it: claim and device
 * policies, the template with the shared hook, and an ACTIVE claim certificate whose files are
 * written to `<dir>/claim`. Used by the tests and the benchmarks alike.
 */
export async function setupFleet(emulator: Emulator, dir: string): Promise<ClaimFiles> {
  const { control } = emulator;
  await control.createPolicy(CLAIM_POLICY, claimPolicyDocument());
  await control.createPolicy(DEVICE_POLICY, devicePolicyDocument());
  await control.createProvisioningTemplate({
    templateName: TEMPLATE_NAME,
    templateBody: templateBody(),
    enabled: true,
    provisioningRoleArn: 'arn:aws:iam::000000000000:role/fp-test-provisioning',
    preProvisioningHook: { source: PRE_PROVISIONING_HOOK_SOURCE, env: { [HOOK_ENV.parameter]: DEVICE_ID_PARAMETER } },
  });
  const issued = await emulator.issueClaim({ policyName: CLAIM_POLICY });
  // The claim directory exactly as `init` writes it (<dir>/claim, key 0600).
  const paths = projectPaths(dir);
  await writeClaimFiles(paths, { certPem: issued.certificatePem, keyPem: issued.privateKeyPem!, rootCaPem: emulator.caPem });
  return {
    certificateId: issued.certificateId,
    certPem: issued.certificatePem,
    keyPem: issued.privateKeyPem!,
    certPath: paths.claimCert,
    keyPath: paths.claimKey,
    rootCaPath: paths.rootCa,
  };
}

/**
 * FP_TEST_TLS_WORKERS=N runs the tests' emulators with N TLS worker processes (the library's
 * default is 0, TLS in the emulator's thread; the CLI's is one per core but one from 3 cores up), so the same
 * tests check that TLS behaves the same in both modes.
 */
export const TEST_TLS_WORKERS = process.env.FP_TEST_TLS_WORKERS;

/** Starts an emulator (free port) in a fresh tmp dir with the default setup; closed when the test ends. */
export async function startTestEmulator(options: Partial<EmulatorOptions> = {}): Promise<TestEmulator> {
  const dir = options.dir ?? (await tmpDir('fp-emulator-'));
  const tlsWorkers = TEST_TLS_WORKERS === undefined ? {} : { tlsWorkers: Number(TEST_TLS_WORKERS) };
  const emulator = await startEmulator({ port: 0, ...tlsWorkers, ...options, dir: path.join(dir, 'state') });
  onTestFinished(() => emulator.close());
  return { emulator, dir, templateName: TEMPLATE_NAME, claim: await setupFleet(emulator, dir) };
}

/**
 * Connects an mqtt.js client over mutual TLS. Never retries (a refused certificate must fail the
 * promise, see DESIGN.md pitfalls) and gives up after `timeoutMs`. Ended when the test finishes.
 */
export async function connectMqtt(
  emulator: Pick<Emulator, 'endpoint' | 'port' | 'caPem'>,
  creds: { certPem: string; keyPem: string },
  options: IClientOptions & { timeoutMs?: number } = {},
): Promise<MqttClient> {
  const { timeoutMs = 10_000, ...rest } = options;
  const connecting = mqtt.connectAsync(
    `mqtts://${emulator.endpoint}:${emulator.port}`,
    {
      ca: emulator.caPem,
      cert: creds.certPem,
      key: creds.keyPem,
      servername: emulator.endpoint,
      rejectUnauthorized: true,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      protocolVersion: 5,
      ...rest,
    },
    false,
  );
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`MQTT connect did not settle within ${timeoutMs} ms`)), timeoutMs);
  });
  const client = await Promise.race([connecting, deadline]).finally(() => clearTimeout(timer));
  onTestFinished(() => new Promise<void>((resolve) => client.end(true, {}, () => resolve())));
  return client;
}

export interface FleetReply {
  topic: string;
  accepted: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/**
 * One fleet-provisioning exchange as a device does it: subscribe to both replies, publish, await
 * one. With `subscribe: false`, as Greengrass nucleus lite does it: publish only, and take the
 * reply AWS delivers on the same connection.
 */
export async function fleetRequest(client: MqttClient, topic: string, body: unknown, { subscribe = true, qos = 1 }: { subscribe?: boolean; qos?: 0 | 1 } = {}): Promise<FleetReply> {
  if (subscribe) await client.subscribeAsync([accepted(topic), rejected(topic)], { qos: 1 });
  const reply = new Promise<FleetReply>((resolve, reject) => {
    const onClose = () => {
      client.off('message', onMessage);
      reject(new Error(`the connection closed before the reply to ${topic}`));
    };
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== accepted(topic) && t !== rejected(topic)) return;
      client.off('message', onMessage);
      client.off('close', onClose);
      resolve({ topic: t, accepted: t === accepted(topic), body: JSON.parse(payload.toString()) });
    };
    client.on('message', onMessage);
    client.once('close', onClose);
  });
  // A publish still unacknowledged when the connection drops never settles: the reply decides.
  const published = client.publishAsync(topic, typeof body === 'string' ? body : JSON.stringify(body), { qos });
  return Promise.race([reply, published.then(() => reply)]);
}

/** Resolves when the client's connection closes (the emulator dropped or refused it). */
export function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    if (!client.connected && client.disconnected) return resolve();
    client.once('close', () => resolve());
  });
}

/** The next message the client receives on `topic`. */
export function nextMessage(client: MqttClient, topic: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      client.off('message', onMessage);
      resolve(payload);
    };
    client.on('message', onMessage);
  });
}

/**
 * Starts the real `fp-yocto emulator` (any free port) and resolves with its printed lines once it
 * says ready. Killed when the test ends, if still running.
 */
export async function spawnCliEmulator(dir: string, args: string[] = []) {
  if (TEST_TLS_WORKERS !== undefined && !args.includes('--tls-workers')) args = [...args, '--tls-workers', TEST_TLS_WORKERS];
  const child = execa('node', [CLI, 'emulator', '--port', '0', '--state-dir', dir, ...args], { reject: false, env: { NO_COLOR: '1' }, stderr: 'inherit' });
  onTestFinished(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const lines: string[] = [];
  const rl = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    rl.on('line', (line) => {
      lines.push(line);
      if (line.startsWith('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`emulator exited early (${code}): ${lines.join('\n')}`)));
  });
  return { child, lines };
}
