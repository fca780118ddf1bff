// Opens the provider a project uses: AWS (the SDK, loaded only here) or the local emulator.
import { UserError } from '../../shared/errors.ts';
import type { ProjectPaths } from '../project.ts';
import type { CloudProvider } from '../provider.ts';
import { DEFAULT_LOCAL_PORT } from '../settings.ts';

export interface ProviderChoice {
  local: boolean;
  region?: string;
  profile?: string;
  /** --local: the emulator's MQTT port. */
  port?: number;
  pollMs?: number;
}

export async function openProvider(choice: ProviderChoice, paths: ProjectPaths, log?: (line: string) => void): Promise<CloudProvider> {
  if (!choice.local) {
    const { createAwsProvider } = await import('./aws.ts');
    return createAwsProvider({ region: choice.region, profile: choice.profile, pollMs: choice.pollMs });
  }
  const { ensureEmulator, EMULATOR_ACCOUNT_ID, EMULATOR_REGION } = await import('../../emulator/index.ts');
  const port = choice.port ?? DEFAULT_LOCAL_PORT;
  const running = await ensureEmulator({ dir: paths.emulatorDir, port }).catch((error: Error) => {
    if (/EADDRINUSE|already in use/i.test(error.message)) {
      throw new UserError(`port ${port} is already in use by another program: pass --port with a free port`);
    }
    throw new UserError(`cannot start the local emulator: ${error.message}`);
  });
  if (running.started) log?.(`started the local emulator on ${running.endpoint}:${running.port} (state in ${paths.emulatorDir})`);
  const { LocalProvider } = await import('./local.ts');
  return new LocalProvider({
    control: running.control,
    region: EMULATOR_REGION,
    accountId: EMULATOR_ACCOUNT_ID,
  });
}
