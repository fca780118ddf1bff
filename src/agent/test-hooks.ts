// Test hooks, read from the environment; inert unless set.
//
// FP_AGENT_TEST_PAUSE_AT=<checkpoint>: at that checkpoint of `provision`, print
//   "paused at <checkpoint>" to stderr and wait forever, so a test can SIGKILL the agent at an
//   exact step without sleeps (see CHECKPOINTS in provision-steps.ts).
// FP_AGENT_TEST_NOW=<ISO 8601 time>: the time the agent's own certificate validity checks use,
//   to exercise the "time not synced" path without changing the system clock.
// FP_AGENT_SYSROOT=<dir>: prefix for the /sys, /proc and /etc reads of `identify` and for
//   /etc/group (greengrass.group): fake device trees.
// FP_AGENT_REPORT_RSS=1: print "maxrss-kb <n>" to stderr on exit (bench: peak RSS).
// FP_AGENT_REPORT_PHASES=1: print "phase <name> <ms> <rss-kb>" to stderr at the start of
//   `provision` and at every checkpoint: the time since the previous one (the first: since the
//   process started) and the resident set then (bench: time per phase).
import type { Checkpoint } from './provision-steps.ts';

let lastPhaseAt = 0;

/** Marks the end of a phase for FP_AGENT_REPORT_PHASES. */
export function phase(name: string): void {
  if (process.env.FP_AGENT_REPORT_PHASES !== '1') return;
  const at = performance.now();
  process.stderr.write(`phase ${name} ${(at - lastPhaseAt).toFixed(1)} ${process.memoryUsage.rss() >> 10}\n`);
  lastPhaseAt = at;
}

export function pauseAt(checkpoint: Checkpoint): Promise<void> {
  phase(checkpoint);
  if (process.env.FP_AGENT_TEST_PAUSE_AT !== checkpoint) return Promise.resolve();
  process.stderr.write(`paused at ${checkpoint}\n`);
  // An interval keeps the event loop (and so the process) alive until the test kills it.
  return new Promise(() => setInterval(() => undefined, 60_000));
}

export function now(): Date {
  const fake = process.env.FP_AGENT_TEST_NOW;
  if (fake) {
    const date = new Date(fake);
    if (!Number.isNaN(date.getTime())) return date;
  }
  return new Date();
}

export function sysroot(): string {
  return process.env.FP_AGENT_SYSROOT ?? '';
}

export function reportRss(): void {
  if (process.env.FP_AGENT_REPORT_RSS === '1') process.stderr.write(`maxrss-kb ${process.resourceUsage().maxRSS}\n`);
}
