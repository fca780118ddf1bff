// Public entry of the simulate part: many real agent flows, on worker threads, against a project.
export { runFleet, outcomeOf, defaultWorkers, type BaseConfig, type FleetOptions, type FleetRun } from './fleet.ts';
export { chooseRunDir, type RunDir, type RunDirOptions } from './run-dir.ts';
export { resolveTarget, type Target, type TargetOptions } from './target.ts';
export { createProgress, renderProgress, type Progress } from './progress.ts';
export { summarize, summaryRows, formatDuration, quantileSorted, type DeviceResult, type Summary, type Tally } from './summary.ts';
export { deviceId, randomRunPrefix, MAX_DEVICES } from './device-ids.ts';
