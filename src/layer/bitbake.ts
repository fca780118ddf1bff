// How values are written into bitbake metadata. Bitbake has no escape sequences: inside a quoted
// value a backslash is kept as is (`"a\"b"` reads back as `a\"b`), and `${NAME}` is expanded when
// NAME is a defined variable and kept literally otherwise. So a value is written by choosing the
// quote character it does not need to escape, never by adding backslashes.
import { UserError } from '../shared/errors.ts';
import { AGENT_BIN, CONFIG_DIR, OUTPUT_DIR } from '../shared/device-paths.ts';

const count = (s: string, c: string): number => s.split(c).length - 1;

/**
 * Quotes `value` for a bitbake assignment (`VAR = <result>`), so that the variable's unexpanded
 * value (`d.getVar(VAR, False)`) is exactly `value`.
 *
 * Bitbake's assignment grammar knows no escapes and rejects a quoted value holding exactly one of
 * its own quote character. So: double quotes for a value without `"`; single quotes for one with
 * `"` (JSON, say) unless it holds exactly one `'`; double quotes again unless it holds exactly one
 * `"`; and for the last case, one `"` and one `'`, `${@chr(34)}` stands for the `"`, which is only
 * right once expanded. Line breaks cannot be written.
 *
 * `$` needs no quoting: `${deviceId}` is not a bitbake variable, so it survives expansion. Recipes
 * that must keep every `${` literal (the template parameters) read the value unexpanded.
 */
export function bbQuote(value: string): string {
  const bad = /[\u0000-\u0008\u000a-\u001f\u007f]/.exec(value);
  if (bad) {
    const what = bad[0] === '\n' || bad[0] === '\r' ? 'a line break' : `the control character U+${bad[0].charCodeAt(0).toString(16).padStart(4, '0')}`;
    throw new UserError(`cannot write ${JSON.stringify(value)} as a bitbake value: it holds ${what}`);
  }
  if (!value.includes('"')) return `"${value}"`;
  if (count(value, "'") !== 1) return `'${value}'`;
  if (count(value, '"') !== 1) return `"${value}"`;
  return `"${value.replace('"', '${@chr(34)}')}"`;
}

/** Bitbake's names for the directories the layer installs into, longest prefix first. */
const BITBAKE_DIRS: ReadonlyArray<readonly [string, string]> = [
  ['/usr/lib/systemd/system', '${systemd_system_unitdir}'],
  ['/lib/systemd/system', '${systemd_system_unitdir}'],
  ['/usr/bin', '${bindir}'],
  ['/etc', '${sysconfdir}'],
  ['/var', '${localstatedir}'],
];

/** `/usr/bin/fp-agent` → `${bindir}/fp-agent`: a device path as a recipe writes it. */
export function toBitbakePath(devicePath: string): string {
  for (const [prefix, variable] of BITBAKE_DIRS) {
    if (devicePath === prefix || devicePath.startsWith(`${prefix}/`)) return variable + devicePath.slice(prefix.length);
  }
  throw new Error(`no bitbake directory variable covers ${devicePath}`);
}

// Fail at load time rather than in a rendered recipe if a shared path moves somewhere unmapped.
for (const p of [AGENT_BIN, CONFIG_DIR, OUTPUT_DIR]) toBitbakePath(p);
