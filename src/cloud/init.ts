// fp-yocto init: deploy (or update) the stack, make sure a valid claim certificate exists, and
// write the claim files, the local.conf sample and the state. Safe to re-run: it says what changed.
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { updateLayer } from '../layer/update-layer.ts';
import { writeFileAtomic } from '../shared/atomic-file.ts';
import { GREENGRASS_GROUP } from '../shared/device-paths.ts';
import { packageRoot } from '../shared/package-root.ts';
import { UserError } from '../shared/errors.ts';
import { QEMU_HOST_ADDRESS } from '../shared/protocol.ts';
import { certificateMatchesKey, makeClaimKey } from './claim.ts';
import { renderLocalConfSample, type LocalConfValues } from './local-conf.ts';
import {
  ensureGitignore,
  projectPaths,
  readState,
  writeClaimFiles,
  writeState,
  type CertificateRecord,
  type ProjectPaths,
  type ProjectState,
} from './project.ts';
import { openProvider } from './providers/index.ts';
import type { CloudProvider, Ui } from './provider.ts';
import { DEFAULT_CLIENT_ID_PREFIX, DEFAULT_LOCAL_PORT } from './settings.ts';
import { buildStack, stackParameterValues, type StackOptions } from './stack.ts';
import type { DeviceEntry } from './devices/device-file.ts';
import { deviceIdKind, importSummaryLine, openDeviceStore, progressReporter, readDeviceList, refuseInvalid } from './devices/project-devices.ts';

export interface InitOptions {
  dir: string;
  local: boolean;
  stackName: string;
  region?: string;
  profile?: string;
  port?: number;
  /** Unset values keep what the project had, then the defaults. */
  settings: Partial<ProjectState['settings']>;
  /** --allow-list: a device list file (or inline ids) to import; turns the allow-list on. */
  allowList?: string;
  pollMs?: number;
}

export interface InitResult {
  state: ProjectState;
  /** What this run changed, one line each; empty means nothing. */
  changed: string[];
}

export function defaultSettings(stackName: string): ProjectState['settings'] {
  return {
    greengrass: true,
    artifactBuckets: [],
    thingNamePrefix: `${stackName}-`,
    clientIdPrefix: DEFAULT_CLIENT_ID_PREFIX,
    requireAllowList: false,
    oneIdentity: true,
    deviceIdSource: 'mac',
  };
}

/**
 * Settings as an older fp-yocto wrote them: the allow-list was a list of MACs in the stack's
 * AllowedDeviceIds parameter. That parameter is gone; its ids go into the device table on the
 * next init, and the allow-list stays on.
 */
export function migrateSettings(settings: (Partial<StackOptions> & { allowList?: unknown }) | undefined): {
  settings: Partial<StackOptions>;
  legacyAllowList: string[];
} {
  if (!settings) return { settings: {}, legacyAllowList: [] };
  const { allowList, ...rest } = settings;
  const legacy = Array.isArray(allowList) ? allowList.filter((id): id is string => typeof id === 'string') : [];
  return { settings: legacy.length && rest.requireAllowList === undefined ? { ...rest, requireAllowList: true } : rest, legacyAllowList: legacy };
}

export async function runInit(options: InitOptions, ui: Ui): Promise<InitResult> {
  const paths = projectPaths(options.dir);
  await mkdir(paths.dir, { recursive: true });
  const previous = await readState(paths);
  const provider = options.local ? 'local' : 'aws';
  if (previous && (previous.provider !== provider || previous.stackName !== options.stackName)) {
    throw new UserError(
      `${paths.dir} already holds stack ${previous.stackName} (${previous.provider}); run \`fp-yocto destroy\` first or use another --dir`,
    );
  }
  const migrated = migrateSettings(previous?.settings);
  const settings: StackOptions = { ...defaultSettings(options.stackName), ...migrated.settings, ...definedOnly(options.settings) };
  // The list is read (and refused with its line numbers) before anything is deployed.
  const toImport: DeviceEntry[] = migrated.legacyAllowList.map((deviceId) => ({ deviceId }));
  let duplicates = 0;
  if (options.allowList !== undefined) {
    const list = await readDeviceList(options.allowList, deviceIdKind(settings), '--allow-list');
    refuseInvalid(list);
    toImport.push(...list.entries);
    duplicates = list.duplicates;
    settings.requireAllowList = true;
  }
  const stackOptions: StackOptions = settings;
  const cloud = await openProvider(
    { local: options.local, region: options.region ?? previous?.region, profile: options.profile ?? previous?.profile, port: options.port ?? previous?.port ?? (options.local ? DEFAULT_LOCAL_PORT : undefined), pollMs: options.pollMs },
    paths,
    (line) => ui.info(line),
  );
  try {
    const changed: string[] = [];
    ui.info(`${previous ? 'updating' : 'creating'} stack ${options.stackName} (${cloud.kind === 'local' ? 'local emulator' : cloud.region})`);
    const deployed = await cloud.deploy(
      { stackName: options.stackName, template: buildStack(stackOptions), parameters: stackParameterValues(stackOptions) },
      ui,
    );
    if (deployed.changes.length) changed.push(`stack ${options.stackName}: ${deployed.changes.length} resource change(s)`);

    if (toImport.length) {
      const store = openDeviceStore(cloud, { stackName: options.stackName, names: deployed.names });
      if (migrated.legacyAllowList.length) ui.info(`moving the ${migrated.legacyAllowList.length} id(s) of the old AllowedDeviceIds parameter into ${store.table}`);
      const summary = await store.allow(toImport, progressReporter(toImport.length, (line) => ui.info(line)));
      changed.push(importSummaryLine(summary, { duplicates }, store.table));
    }

    const now = new Date().toISOString();
    const endpoints = await cloud.describeEndpoints();
    const state: ProjectState = {
      version: 1,
      provider,
      stackName: options.stackName,
      region: cloud.region,
      ...(options.profile ?? previous?.profile ? { profile: options.profile ?? previous?.profile } : {}),
      ...(options.local ? { port: endpoints.port } : {}),
      settings,
      names: deployed.names,
      endpoints,
      certificates: [...(previous?.certificates ?? [])],
      createdAt: previous?.createdAt ?? now,
      updatedAt: now,
    };
    const rootCaPem = await cloud.rootCaPem();
    const current = await usableClaim(cloud, paths, state.certificates);
    if (current) {
      // Idempotent: attaching an attached policy is a no-op, and a renamed policy gets attached.
      await cloud.attachPolicy(deployed.names.claimPolicy, current);
      if ((await readFile(paths.rootCa, 'utf8').catch(() => '')) !== rootCaPem) {
        await writeFileAtomic(paths.rootCa, rootCaPem);
        changed.push(`wrote ${path.relative(paths.dir, paths.rootCa)}`);
      }
    } else {
      const issued = await issueClaim(cloud, state, paths);
      await writeClaimFiles(paths, { certPem: issued.certificatePem, keyPem: issued.keyPem, rootCaPem });
      changed.push(`new claim certificate ${issued.certificateId.slice(0, 12)}… in ${path.relative(paths.dir, paths.claimDir)}/`);
    }

    if (await writeIfChanged(paths.confSample, renderLocalConfSample(localConfValues(state, paths), confHeader(state)))) {
      changed.push(`wrote ${path.relative(paths.dir, paths.confSample)}`);
    }
    const layer = await updateLayer(paths.dir);
    const layerChanges = layer.added.length + layer.changed.length + layer.removed.length;
    if (layerChanges) changed.push(`rendered ${path.relative(paths.dir, paths.layer)}/ (${layerChanges} file(s))`);
    if (await ensureGitignore(paths)) changed.push('added claim/ and .fp-yocto/ to .gitignore');
    await writeState(paths, state);
    return { state, changed };
  } finally {
    await cloud.close();
  }
}

/** The current claim certificate, if its files are here, match, and it is still ACTIVE. */
async function usableClaim(cloud: CloudProvider, paths: ProjectPaths, certificates: CertificateRecord[]): Promise<CertificateRecord | undefined> {
  const current = certificates.at(-1);
  if (!current || current.deactivateAfter || current.deactivatedAt) return undefined;
  const [certPem, keyPem] = await Promise.all([readFile(paths.claimCert, 'utf8'), readFile(paths.claimKey, 'utf8')]).catch(() => []);
  if (!certPem || !keyPem || !certificateMatchesKey(certPem, keyPem)) return undefined;
  const info = await cloud.describeCertificate(current.certificateId);
  if (info?.status !== 'ACTIVE') return undefined;
  if (info.notAfter && Date.parse(info.notAfter) <= Date.now()) return undefined;
  return current;
}

/**
 * A new claim certificate: key and CSR here, the certificate from the cloud, recorded in
 * state.json at once (so destroy can always find it), then the claim policy attached.
 */
export async function issueClaim(cloud: CloudProvider, state: ProjectState, paths: ProjectPaths) {
  const { keyPem, csrPem } = makeClaimKey(`${state.stackName}-claim`);
  const issued = await cloud.createCertificateFromCsr(csrPem);
  state.certificates.push({ certificateId: issued.certificateId, certificateArn: issued.certificateArn, createdAt: new Date().toISOString() });
  await writeState(paths, state);
  await cloud.attachPolicy(state.names.claimPolicy, issued);
  return { ...issued, keyPem };
}

export function localConfValues(state: ProjectState, paths: ProjectPaths): LocalConfValues {
  // The emulator listens on the build host's loopback; an image under QEMU reaches it at slirp's
  // host address, which the emulator's server certificate names.
  const deviceHost = (host: string) => (state.provider === 'local' ? QEMU_HOST_ADDRESS : host);
  return {
    FLEETPROV_CLAIM_DIR: paths.claimDir,
    FLEETPROV_IOT_DATA_ENDPOINT: deviceHost(state.endpoints.data),
    FLEETPROV_IOT_CRED_ENDPOINT: deviceHost(state.endpoints.credentials),
    FLEETPROV_PORT: String(state.endpoints.port),
    FLEETPROV_AWS_REGION: state.region,
    FLEETPROV_ROLE_ALIAS: state.names.roleAlias,
    FLEETPROV_TEMPLATE_NAME: state.names.templateName,
    FLEETPROV_TEMPLATE_PARAMS: JSON.stringify({ DeviceId: '${deviceId}' }),
    FLEETPROV_CLIENT_ID_PREFIX: state.settings.clientIdPrefix,
    // The hook checks ids of the kind this source gives (the stack's DeviceIdKind).
    FLEETPROV_DEVICE_ID_SOURCE: state.settings.deviceIdSource ?? 'mac',
    // Empty: the agent's defaults (the default route's interface, plain lower-case hex).
    FLEETPROV_DEVICE_ID_INTERFACE: '',
    FLEETPROV_DEVICE_ID_PATH: '',
    FLEETPROV_DEVICE_ID_FORMAT: '',
    FLEETPROV_GREENGRASS: state.settings.greengrass ? '1' : '0',
    FLEETPROV_GREENGRASS_GROUP: GREENGRASS_GROUP,
    // The device key in a file unless the image has a TPM (set tpm by hand: docs/agent.md).
    FLEETPROV_KEY_STORE: 'file',
    FLEETPROV_TPM_HANDLE: '',
    FLEETPROV_TPM_TCTI: '',
    FLEETPROV_HANDOFF: '',
    FLEETPROV_PROXY_URL: '',
    FLEETPROV_PROXY_NO_PROXY: '',
    // The bundle this fp-yocto built (npm ci runs the build): the agent recipe installs it.
    FLEETPROV_AGENT_DIR: path.join(packageRoot(), 'dist'),
  };
}

const confHeader = (state: ProjectState): string =>
  `fp-yocto stack ${state.stackName} (${state.provider === 'local' ? 'local emulator' : `AWS ${state.region}`})`;

async function writeIfChanged(file: string, content: string): Promise<boolean> {
  if ((await readFile(file, 'utf8').catch(() => undefined)) === content) return false;
  await writeFileAtomic(file, content);
  return true;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
