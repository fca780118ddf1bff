import { execFileSync } from 'node:child_process';

/** Whether a command runs here (`<command> <args>` exits 0): for tests that need a host tool. */
export function commandWorks(command: string, args: string[] = ['--version']): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** What a command prints on stdout, trimmed; '' when it fails or is not there. */
export function commandOutput(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}
