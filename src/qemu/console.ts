// Reading the guest's serial console: its kernel time stamps and the lines systemd and the
// agent write through the journal (forward_to_console).
import type { Vm } from './boot.ts';

/** Pure: the guest's monotonic time (s) of a console line, from its "[   12.345678]" prefix. */
export function guestSeconds(line: string): number | undefined {
  const m = /^\[\s*(\d+\.\d+)\]/.exec(line);
  return m ? Number(m[1]) : undefined;
}

export const reEscape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** systemd's journal lines about one unit. */
export const unitLine = {
  finished: (unit: string) => new RegExp(`Finished ${reEscape(unit)}\\b`),
  exited: (unit: string, status: number) => new RegExp(`${reEscape(unit)}: Main process exited, code=exited, status=${status}/`),
  scheduledRestart: (unit: string) => new RegExp(`${reEscape(unit)}: Scheduled restart job`),
  skipped: (unit: string) => new RegExp(`${reEscape(unit)}\\b.*skipped because of an unmet condition`),
};

/** The agent's log lines (stderr → journal → console). */
export const agentLine = /fp-agent(\[\d+\])?: fp-agent: /;

/** Console lines from index `from` on that match `re`. */
export function linesMatching(vm: Vm, re: RegExp, from = 0): string[] {
  return vm.lines.slice(from).filter((l) => re.test(l));
}

/** Index of the first line at or after `from` matching `re`, or -1. */
export function indexOf(vm: Vm, re: RegExp, from = 0): number {
  for (let i = from; i < vm.lines.length; i++) if (re.test(vm.lines[i]!)) return i;
  return -1;
}
