// The emulator on the host, set up the way `init` sets up AWS IoT: the very stack object
// (src/cloud/stack.ts, Greengrass on) applied by the local provider, so the provisioning template
// with its hook, the claim policy and the device policy are the ones a real deployment gets; plus
// a claim certificate written to files for the claim recipe.
// Its log is kept as lines that a scenario can wait on (event driven), and it can be cut and
// started again on the same port and state directory, as a real outage would look to a device.
import { join } from 'node:path';
import { startEmulator, EMULATOR_ACCOUNT_ID, EMULATOR_REGION, type Emulator } from '../emulator/index.ts';
import { projectPaths, writeClaimFiles, type ResourceNames } from '../cloud/project.ts';
import { LocalProvider } from '../cloud/providers/local.ts';
import type { Ui } from '../cloud/provider.ts';
import { buildStack, stackParameterValues, type StackOptions } from '../cloud/stack.ts';
import { LineLog } from './line-log.ts';

export const QEMU_STACK = 'fp-qemu';
export const QEMU_STACK_OPTIONS: StackOptions = {
  greengrass: true,
  thingNamePrefix: 'fp-',
  clientIdPrefix: 'fleetprov-',
  // As `init` deploys by default: no allow-list, one identity per device id.
  requireAllowList: false,
  oneIdentity: true,
  deviceIdSource: 'mac',
};

export interface FleetEmulator {
  /** The running emulator (replaced by `restart`). */
  readonly current: Emulator;
  readonly port: number;
  readonly region: string;
  /** The stack's resource names (template, policies, thing group) as deployed. */
  readonly names: ResourceNames;
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

/** `listen`: where the emulator listens (default 127.0.0.1, a free port); port 443 plays AWS's ALPN-only port. */
export async function startFleetEmulator(workDir: string, listen: { host?: string; port?: number } = {}): Promise<FleetEmulator> {
  const stateDir = join(workDir, 'emulator');
  const log = new LineLog();
  const start = (port: number) => startEmulator({ port, ...(listen.host ? { host: listen.host } : {}), dir: stateDir, log: (line) => log.push(line) });
  let emulator = await start(listen.port ?? 0);
  let running = true;
  const port = emulator.port;
  const ui: Ui = { info: (line) => log.push(`deploy: ${line}`), warn: (line) => log.push(`deploy: warning: ${line}`), confirm: async () => true };
  const provider = new LocalProvider({ control: emulator.control, region: EMULATOR_REGION, accountId: EMULATOR_ACCOUNT_ID });
  const { names } = await provider.deploy(
    { stackName: QEMU_STACK, template: buildStack(QEMU_STACK_OPTIONS), parameters: stackParameterValues(QEMU_STACK_OPTIONS) },
    ui,
  );
  const issued = await emulator.issueClaim({ policyName: names.claimPolicy });
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
    names,
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
