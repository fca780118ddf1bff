// Errors a user can act on: shown as one line, never as a stack trace.

/** sysexits(3) codes used by fp-agent and fp-yocto. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 64,
  /** Input data was wrong (some lines of a device list). */
  dataErr: 65,
  /** A transient fault outlived the retry deadline: systemd restarts the unit later. */
  tempFail: 75,
  /** Bad configuration or a permanent rejection: retrying will not help. */
  config: 78,
} as const;

export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

/** A bad value in a file or flag: the message names the file, the field and what was expected. */
export class ConfigError extends UserError {
  constructor(
    readonly file: string,
    readonly field: string,
    readonly expected: string,
  ) {
    super(`${file}: ${field}: expected ${expected}`, EXIT.config);
    this.name = 'ConfigError';
  }
}

export function isUserError(error: unknown): error is UserError {
  return error instanceof UserError;
}
