// The commands of fp-agent, loaded by main.ts once the command line is parsed: each reads the
// config, bounds its run, and does its work.
import { readFile, stat } from 'node:fs/promises';
import type { AgentConfig } from '../shared/config.ts';
import { EXIT } from '../shared/errors.ts';
import { Fault } from './errors.ts';
import { bounded, FS_STEP_TIMEOUT_MS } from './local-files.ts';
import { log, logFatal } from './log.ts';
import { writeOut } from './stdio.ts';
import { reportRss } from './test-hooks.ts';

export interface CommandOptions {
  configFile: string;
  force: boolean;
  json: boolean;
  protocolVersion: 4 | 5;
}

export async function loadConfig(file: string): Promise<AgentConfig> {
  const timedOut = () => new Fault('configFile', `${file}: the filesystem did not answer within ${FS_STEP_TIMEOUT_MS / 1000} s`);
  let text: string;
  try {
    text = await bounded(readFile(file, 'utf8'), FS_STEP_TIMEOUT_MS, timedOut);
  } catch (error) {
    if (error instanceof Fault) throw error;
    throw new Fault('configFile', `${file}: cannot read the config file (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const { parseAgentConfig } = await import('../shared/config.ts');
  const config = parseAgentConfig(text, file, (warning) => log(`warning: ${warning}`));
  // docs/proxy.md: a proxy password belongs in a config only root reads (the layer writes it 0600).
  if (config.proxy?.url?.password !== undefined) {
    const mode = await stat(file).then((s) => s.mode & 0o777, () => 0);
    if (mode & 0o044) log(`warning: ${file} holds a proxy password and others may read it (mode ${mode.toString(8).padStart(4, '0')}): make it 0600`);
  }
  return config;
}

/**
 * Whatever the filesystem or the network does, the run ends: a little after retry.deadlineMs
 * (every wait inside is bounded by it already), exit 75 with the last thing the agent was doing.
 */
function watchdog(config: AgentConfig): void {
  const graceMs = 5_000;
  setTimeout(() => {
    logFatal(`gave up: the run did not end within retry.deadlineMs (${config.retry.deadlineMs} ms) + ${graceMs / 1000} s`);
    reportRss();
    process.exit(EXIT.tempFail);
  }, config.retry.deadlineMs + graceMs).unref();
}

export const runCommand = {
  async identify({ configFile }: CommandOptions): Promise<number> {
    const config = await loadConfig(configFile);
    watchdog(config);
    const { identify, storeDeviceId } = await import('./identify.ts');
    const { accessPlan } = await import('./file-access.ts');
    const { checkOutputDir } = await import('./preflight.ts');
    const plan = await accessPlan(config);
    await checkOutputDir(config, plan);
    const { deviceId, origin } = await identify(config, Date.now() + config.retry.deadlineMs);
    await storeDeviceId(config, deviceId, plan.deviceId);
    log(`device id ${deviceId} (${origin})`);
    writeOut(1, `${deviceId}\n`);
    return EXIT.ok;
  },

  async provision({ configFile, force, protocolVersion }: CommandOptions): Promise<number> {
    const config = await loadConfig(configFile);
    watchdog(config);
    const { provision } = await import('./provision.ts');
    await provision(config, { force, protocolVersion });
    return EXIT.ok;
  },

  async status({ configFile, json }: CommandOptions): Promise<number> {
    const config = await loadConfig(configFile);
    const { formatStatus, status } = await import('./status.ts');
    const report = await status(config);
    writeOut(1, json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
    return EXIT.ok;
  },
};
