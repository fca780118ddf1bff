// The YAML subset the project writes (src/shared/simple-yaml.ts) must never read a document
// differently from the `yaml` library: whatever it accepts, yaml reads the same; whatever yaml
// refuses, it refuses too (and the caller falls back to yaml for its message).
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { isPlainString, parseSimpleYaml, stringifySimpleYaml } from '../../src/shared/simple-yaml.ts';

/** yaml's reading, or 'refused' when it reports an error or a warning. */
function yamlReads(text: string): unknown {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0 || doc.warnings.length > 0) return 'refused';
  return doc.toJS() ?? {};
}

/** A small seeded PRNG (mulberry32): the same cases on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const RECIPE_STYLE = [
  '# Written by the fleetprovisioning-config recipe from the FLEETPROV_* variables.',
  'iotDataEndpoint: "abc-ats.iot.eu-west-1.amazonaws.com"',
  'port: 8883',
  'templateName: "fleet_tpl-1"',
  'templateParams: {"DeviceId": "${deviceId}", "Batch": "7"}',
  'deviceId:',
  '  source: "mac"',
  '  format: "plain"',
  'greengrass:',
  '  enabled: true',
  '  group: "ggcore"',
  'retry: {}',
  'removeClaimKeyAfterSuccess: false',
  '',
].join('\n');

describe('the small YAML subset', () => {
  it('reads what the layer writes, without a YAML library, as yaml does', () => {
    const simple = parseSimpleYaml(RECIPE_STYLE);
    expect(simple).toBeDefined();
    expect(simple).toEqual(yamlReads(RECIPE_STYLE));
  });

  it('writes the drop-in with bare thing names, paths, host names and IPv4 addresses, quoting the rest', () => {
    const doc = {
      system: { thingName: 'fp-001b213a4f5e', certificateFilePath: '/var/lib/fleetprovisioning/device.cert.pem' },
      services: { 'aws.greengrass.NucleusLite': { configuration: { iotDataEndpoint: '10.0.2.2', awsRegion: 'us-east-1', odd: 'yes', num: '1e3', c: 'a: b' } } },
    };
    const text = stringifySimpleYaml(doc);
    expect(text).toContain('thingName: fp-001b213a4f5e\n');
    expect(text).toContain('certificateFilePath: /var/lib/fleetprovisioning/device.cert.pem\n');
    expect(text).toContain('iotDataEndpoint: 10.0.2.2\n');
    expect(text).toContain('odd: "yes"\n');
    expect(text).toContain('num: "1e3"\n');
    expect(yamlReads(text)).toEqual(doc);
    expect(parseSimpleYaml(text)).toEqual(doc);
  });

  it.each([
    ['a duplicate key', 'a: 1\na: 2\n'],
    ['a duplicate key inside a JSON value', 'a: {"x": 1, "x": 2}\n'],
    ['a comment after a value', 'a: "x" # note\n'],
    ['a plain word YAML reads as a boolean', 'a: yes\n'],
    ['a number YAML and JSON read apart', 'a: 0123\n'],
    ['a tag', 'a: !t x\n'],
    ['a sequence', 'a:\n  - 1\n'],
    ['a tab', 'a:\n\tb: 1\n'],
    ['a misaligned sibling', 'a:\n    b: 1\n  c: 2\n'],
    ['a document marker', '---\na: 1\n'],
    ['key:value without a space', 'a:b\n'],
    ['a root indented', '  a: 1\n'],
    ['a __proto__ key', '__proto__: {"x": 1}\n'],
  ])('leaves %s to yaml', (_what, text) => {
    expect(parseSimpleYaml(text)).toBeUndefined();
  });

  it('agrees with yaml on generated documents, both ways', () => {
    const next = random(13);
    const pick = <T>(items: T[]) => items[Math.floor(next() * items.length)]!;
    const scalar = () =>
      pick<() => unknown>([
        () => pick(['fp-01', '/var/lib/x', 'a.b-c_d', 'yes', 'No', 'null', '~', '1.2.3.4', '1.2.3', '12', '-1', '0x1f', '1e3', 'a b', 'a:b', '#x', '', 'ümlaut', '${deviceId}', 'tab\there', 'new\nline']),
        () => Math.round(next() * 1e6) - 5e5,
        () => next() < 0.5,
        () => null,
        () => [pick([1, 'x', true])],
        () => ({}),
      ])();
    const mapping = (depth: number): Record<string, unknown> => {
      const doc: Record<string, unknown> = {};
      const keys = 1 + Math.floor(next() * 4);
      for (let i = 0; i < keys; i++) {
        const key = pick(['a', 'deviceId', 'aws.greengrass.NucleusLite', 'with space', 'true', '1', 'k-2', `x${i}`]);
        doc[key] = depth < 3 && next() < 0.3 ? mapping(depth + 1) : scalar();
      }
      return doc;
    };
    for (let n = 0; n < 500; n++) {
      const doc = mapping(0);
      const text = stringifySimpleYaml(doc);
      expect(yamlReads(text), text).toEqual(doc);
      expect(parseSimpleYaml(text), text).toEqual(doc);
    }
  });

  it('accepts a changed line only if yaml reads the result the same (mutations of the layer style)', () => {
    const next = random(7);
    const bits = [' ', '  ', ':', '#', '"', '{', '}', '[', '-', '!', '&', '*', 'yes', '01', '\t', '\\', ',', '?', '|', '>', '%', '@', '`', "'"];
    const lines = RECIPE_STYLE.split('\n');
    let accepted = 0;
    for (let n = 0; n < 3000; n++) {
      const copy = [...lines];
      const i = Math.floor(next() * copy.length);
      const line = copy[i]!;
      const at = Math.floor(next() * (line.length + 1));
      copy[i] = next() < 0.7 ? line.slice(0, at) + bits[Math.floor(next() * bits.length)] + line.slice(at) : line.slice(0, at) + line.slice(at + 1);
      const text = copy.join('\n');
      const simple = parseSimpleYaml(text);
      if (simple === undefined) continue;
      accepted++;
      expect(yamlReads(text), text).toEqual(simple);
    }
    // The test means something only if many mutations stay in the subset.
    expect(accepted).toBeGreaterThan(300);
  });

  it('calls a string plain only where YAML 1.1 and 1.2 agree it is a string', () => {
    for (const s of ['fp-1', '/a/b', '10.0.2.2', 'x.y']) expect(isPlainString(s)).toBe(true);
    for (const s of ['yes', 'Off', 'NULL', '1.5', '10.0.2', '1e3', '-x', '.inf', 'a:b', 'a b', '']) expect(isPlainString(s)).toBe(false);
  });
});
