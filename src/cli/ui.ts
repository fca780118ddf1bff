// How cloud commands talk to the user: @clack/prompts on a terminal, plain lines otherwise
// (CI logs, pipes), and never a prompt unless stdin is a terminal and --yes was not given.
import * as p from '@clack/prompts';
import pc from 'picocolors';
import { EXIT, UserError } from '../shared/errors.ts';
import type { Ui } from '../cloud/provider.ts';

export interface CliUi extends Ui {
  readonly interactive: boolean;
  intro(title: string): void;
  success(message: string): void;
  /** Prompts for text with a default; non-interactive returns the default. */
  text(message: string, initial: string, validate?: (value: string) => string | undefined): Promise<string>;
  outro(message: string): void;
  /** Asks to pick one option; non-interactive returns the first. */
  choose<T extends string>(message: string, options: { value: T; label: string; hint?: string }[]): Promise<T>;
}

const cancelled = (): never => {
  throw new UserError('cancelled', EXIT.failure);
};

export function createUi({ yes = false }: { yes?: boolean } = {}): CliUi {
  const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const interactive = tty && !yes;
  if (!tty) {
    return {
      interactive: false,
      intro: (title) => console.log(title),
      info: (message) => console.log(message),
      warn: (message) => console.log(`warning: ${message}`),
      success: (message) => console.log(message),
      outro: (message) => console.log(message),
      confirm: async (_question, options) => yes || !options?.destructive,
      text: async (_message, initial) => initial,
      choose: async (_message, options) => options[0]!.value,
    };
  }
  return {
    interactive,
    intro: (title) => p.intro(pc.inverse(` ${title} `)),
    info: (message) => p.log.message(message, { symbol: pc.dim('│'), spacing: 0 }),
    warn: (message) => p.log.warn(message),
    success: (message) => p.log.success(message),
    outro: (message) => p.outro(message),
    async confirm(question, options) {
      if (!interactive) return yes || !options?.destructive;
      const answer = await p.confirm({ message: question, initialValue: !options?.destructive });
      return p.isCancel(answer) ? cancelled() : answer;
    },
    async choose(message, options) {
      if (!interactive) return options[0]!.value;
      // clack's option type is conditional on the value type; the cast keeps ours simple.
      const answer = await p.select({ message, options: options as never });
      return p.isCancel(answer) ? cancelled() : (answer as (typeof options)[number]['value']);
    },
    async text(message, initial, validate) {
      if (!interactive) return initial;
      const answer = await p.text({ message, initialValue: initial, validate: (v) => validate?.(v ?? '') });
      return p.isCancel(answer) ? cancelled() : answer;
    },
  };
}
