// Where a simulated fleet provisions: the project that `fp-yocto init` set up (its state.json,
// claim files, template and client id prefix), on AWS or on the local emulator.
import { access, constants } from 'node:fs/promises';
import type { ControlPlane } from '../emulator/control-plane.ts';
import { projectPaths, requireState, type ProjectState } from '../cloud/project.ts';
import { CONFIG_DEFAULTS, validateAgentConfig } from '../shared/config.ts';
import { DEVICE_ID_PARAMETER } from '../shared/pre-provisioning-hook.ts';
import { UserError } from '../shared/errors.ts';
import type { BaseConfig } from './fleet.ts';

export interface TargetOptions {
  dir: string;
  /** Insist on the local emulator (and start it if it is not running). */
  local?: boolean;
  /** Overrides of the project's data endpoint and port. */
  endpoint?: string;
  port?: number;
  retry?: Partial<BaseConfig['retry']>;
}

export interface Target {
  provider: ProjectState['provider'];
  state: ProjectState;
  base: BaseConfig;
  /** Local only: the emulator's control plane (faults, registry). */
  control?: ControlPlane;
  /** Local only: whether this call started the emulator. */
  emulatorStarted?: boolean;
  /** The project's emulator directory (the state of a local target). */
  emulatorDir: string;
}

export async function resolveTarget(options: TargetOptions): Promise<Target> {
  const paths = projectPaths(options.dir);
  const state = await requireState(paths);
  if (options.local && state.provider !== 'local') {
    throw new UserError(`${paths.dir} was set up for AWS (${state.region}); --local needs a project made with \`fp-yocto init --local\` (use another --dir)`);
  }
  for (const file of [paths.claimCert, paths.claimKey, paths.rootCa]) {
    await access(file, constants.R_OK).catch(() => {
      throw new UserError(`${file} is missing or unreadable: run \`fp-yocto init\` (or rotate-claim) for ${paths.dir}`);
    });
  }

  let endpoint = state.endpoints.data;
  let port = state.endpoints.port;
  let control: ControlPlane | undefined;
  let emulatorStarted: boolean | undefined;
  if (state.provider === 'local' && !options.endpoint) {
    // As init does: the emulator of the project's state dir, started in the background if needed.
    // discovery.ts alone: the emulator's own modules (aedes, SQLite...) run in its process, not here.
    const { ensureEmulator } = await import('../emulator/discovery.ts');
    const wanted = state.port ?? state.endpoints.port;
    const running = await ensureEmulator({ dir: paths.emulatorDir, port: wanted }).catch((error: Error) => {
      if (/EADDRINUSE|already in use/i.test(error.message)) throw new UserError(`port ${wanted} is already in use by another program: stop it, or re-run fp-yocto init --local --port <free port>`);
      throw new UserError(`cannot start the local emulator: ${error.message}`);
    });
    ({ endpoint, port, control } = running);
    emulatorStarted = running.started;
  }
  if (options.endpoint) endpoint = options.endpoint;
  if (options.port !== undefined) port = options.port;

  // Validated like a device's config.yaml, so a bad endpoint or name fails here, once, not N times.
  const placeholder = { outputDir: '/nonexistent', deviceId: { source: 'file', path: '/nonexistent' } };
  const { outputDir: _o, deviceId: _d, ...base } = validateAgentConfig(
    {
      iotDataEndpoint: endpoint,
      port,
      templateName: state.names.templateName,
      templateParams: { [DEVICE_ID_PARAMETER]: '${deviceId}' },
      clientIdPrefix: state.settings.clientIdPrefix,
      claimCertPath: paths.claimCert,
      claimKeyPath: paths.claimKey,
      rootCaPath: paths.rootCa,
      greengrass: { enabled: false },
      retry: { ...CONFIG_DEFAULTS.retry, ...options.retry },
      ...placeholder,
    },
    '(fp-yocto simulate)',
  );
  return { provider: state.provider, state, base, control, emulatorStarted, emulatorDir: paths.emulatorDir };
}
