import pc from 'picocolors';
import { EXIT, isUserError } from '../shared/errors.ts';

/**
 * Prints an error the way a user should see it and returns the exit code. User errors are one
 * line. Anything else is a bug in fp-yocto: one line too, plus the stack with FP_YOCTO_DEBUG=1.
 */
export async function reportError(error: unknown, showUsage: () => Promise<void>): Promise<number> {
  // citty throws CLIError (name "CLIError") for unknown commands and missing arguments.
  if (error instanceof Error && error.name === 'CLIError') {
    await showUsage();
    console.error(pc.red(`error: ${error.message}`));
    return EXIT.usage;
  }
  if (isUserError(error)) {
    console.error(pc.red(`error: ${error.message}`));
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  console.error(pc.red(`internal error: ${message}`));
  if (process.env.FP_YOCTO_DEBUG) console.error(error);
  else console.error('(set FP_YOCTO_DEBUG=1 for details; please report this at the project tracker)');
  return EXIT.failure;
}
