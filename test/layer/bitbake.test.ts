import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bbQuote, toBitbakePath } from '../../src/layer/bitbake.ts';
import { UserError } from '../../src/shared/errors.ts';

/**
 * Bitbake's rule for `VAR = <quoted>` (bb/parse/parse_py/ConfHandler.py): the value runs from the
 * first quote to the same quote at the end of the line, no escapes, and a quoted part holding
 * exactly three of its quote characters is refused. Returns the raw value, or undefined.
 */
function bitbakeReads(quoted: string): string | undefined {
  const q = quoted[0];
  if ((q !== '"' && q !== "'") || quoted.at(-1) !== q || quoted.length < 2) return undefined;
  if (quoted.split(q).length - 1 === 3) return undefined;
  return quoted.slice(1, -1);
}

const SAMPLES = [
  'plain',
  'with spaces  inside',
  'say "hi"',
  '{"DeviceId": "${deviceId}", "Serial": "x"}',
  "it's",
  'one " quote',
  `one " and one '`,
  `it's "quoted" twice's`,
  'back\\slash \\" and \\\\',
  '$HOME ${PN} ${@os.getcwd()} $',
  'amp & <lt> &#34;',
  '',
];

describe('bbQuote', () => {
  it.each(SAMPLES)('writes %j so that bitbake reads it back unchanged', (value) => {
    const quoted = bbQuote(value);
    if (quoted.includes('${@chr(34)}')) {
      // The one case without a literal form: one " and one '. Right once expanded.
      expect(bitbakeReads(quoted)?.replace('${@chr(34)}', '"')).toBe(value);
    } else {
      expect(bitbakeReads(quoted)).toBe(value);
    }
  });

  it('prefers double quotes, and single quotes for JSON', () => {
    expect(bbQuote('a b')).toBe('"a b"');
    expect(bbQuote('{"a": "b"}')).toBe(`'{"a": "b"}'`);
    expect(bbQuote(`x "y" 'z'`)).toBe(`'x "y" 'z''`);
    expect(bbQuote(`x "y" it's`)).toBe(`"x "y" it's"`);
    expect(bbQuote('one " quote')).toBe(`'one " quote'`);
  });

  it('adds no backslashes: bitbake has no escapes and would keep them', () => {
    expect(bbQuote('a\\b "c"')).toBe(`'a\\b "c"'`);
  });

  it('keeps ${ as written (bitbake leaves ${deviceId} alone: it is not a variable)', () => {
    expect(bbQuote('${deviceId}')).toBe('"${deviceId}"');
  });

  it('refuses line breaks with one clear line', () => {
    expect(() => bbQuote('a\nb')).toThrow(UserError);
    expect(() => bbQuote('a\nb')).toThrow(/holds a line break/);
    expect(() => bbQuote('a\u0001b')).toThrow(/control character U\+0001/);
  });

  // Against the real parser, when a bitbake checkout is at hand: BITBAKE_LIB=/path/to/bitbake/lib
  const bitbakeLib = process.env.BITBAKE_LIB;
  it.skipIf(!bitbakeLib || !existsSync(path.join(bitbakeLib ?? '', 'bb')))('round-trips through bitbake itself', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-bbq-'));
    try {
      const conf = path.join(dir, 'test.conf');
      writeFileSync(conf, SAMPLES.map((v, i) => `V${i} = ${bbQuote(v)}\n`).join(''));
      const script = `
import sys, json
sys.path.insert(0, ${JSON.stringify(bitbakeLib)})
import bb.data
from bb.parse.parse_py import ConfHandler
d = bb.data.init()
ConfHandler.include('test', ${JSON.stringify(conf)}, 0, d, 'test')
print(json.dumps([[d.getVar('V%d' % i, False), d.getVar('V%d' % i)] for i in range(${SAMPLES.length})]))
`;
      const read = JSON.parse(execFileSync('python3', ['-c', script], { encoding: 'utf8' })) as [string, string][];
      SAMPLES.forEach((value, i) => {
        const [raw, expanded] = read[i]!;
        // Unexpanded, every value reads back exactly, except the chr(34) case, right once expanded.
        if (bbQuote(value).includes('${@chr(34)}')) expect(expanded).toBe(value);
        else expect(raw).toBe(value);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('toBitbakePath', () => {
  it('uses bitbake directory variables', () => {
    expect(toBitbakePath('/usr/bin/fp-agent')).toBe('${bindir}/fp-agent');
    expect(toBitbakePath('/etc/fleetprovisioning/config.yaml')).toBe('${sysconfdir}/fleetprovisioning/config.yaml');
    expect(toBitbakePath('/var/lib/fleetprovisioning')).toBe('${localstatedir}/lib/fleetprovisioning');
  });
  it('refuses a path no variable covers', () => {
    expect(() => toBitbakePath('/opt/x')).toThrow(/no bitbake directory variable/);
    expect(() => toBitbakePath('/etcetera/x')).toThrow();
  });
});
