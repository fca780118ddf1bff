// config.yaml exactly as the layer's config recipe (fleetprovisioning-config.bb, fleetprov_config)
// writes it from the FLEETPROV_* values: the same fields from the layer model, the same checks and
// messages, the same constants, the same emitter (keys in order, values as JSON). The recipe's
// logic is Python inside bitbake; this is its TypeScript twin, so that a QEMU test image gets the
// file a Yocto build would install. test/layer/config-recipe.test.ts runs both on the same inputs.
import { CONFIG_CONSTANTS, CONFIG_FIELDS, PROXY_URL_PATTERN, type ConfigField } from './model.ts';
import { GROUP_NAME_PATTERN, INTERFACE_NAME_PATTERN, TCTI_PATTERN, TPM_HANDLE_PATTERN, TPM_OWNER_HANDLES } from '../shared/config.ts';
import type { LocalConfName } from '../cloud/local-conf.ts';

type Node = { [k: string]: unknown };
export type RecipeValues = Partial<Record<LocalConfName, string>>;
export type RecipeConfig = { text: string; problem: null } | { text: null; problem: string };

const HEADER = '# Written by the fleetprovisioning-config recipe from the FLEETPROV_* variables.';

/** Python's repr() of a str, for messages identical to the recipe's `%r`. */
function pyRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  const body = [...s]
    .map((c) => {
      if (c === '\\' || c === quote) return `\\${c}`;
      if (c === '\n') return '\\n';
      if (c === '\r') return '\\r';
      if (c === '\t') return '\\t';
      const code = c.codePointAt(0)!;
      return code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, '0')}` : c;
    })
    .join('');
  return `${quote}${body}${quote}`;
}

/** Python's json.dumps: like JSON.stringify with ", " and ": " separators, and non-ASCII as \\uXXXX. */
function pyJson(v: unknown): string {
  const ascii = (s: string) => s.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (v !== null && typeof v === 'object') {
    // Key order as parsed; JavaScript puts integer-like keys first, Python keeps them in place.
    return `{${Object.entries(v).map(([k, x]) => `${ascii(JSON.stringify(k))}: ${pyJson(x)}`).join(', ')}}`;
  }
  return ascii(JSON.stringify(v));
}

/** The value as bitbake would read it: local.conf's, else the recipe's `??=` default. */
function valueOf(values: RecipeValues, name: LocalConfName): string {
  const field = CONFIG_FIELDS.find((f) => f.variable === name);
  return (values[name] ?? field?.default ?? '').trim();
}

/** One field's value for config.yaml, or the recipe's message for it. */
function convert(f: ConfigField, raw: string): { value: unknown } | { problem: string } {
  const got = pyRepr(raw);
  switch (f.type) {
    case 'port':
      return /^[0-9]{1,5}$/.test(raw) && Number(raw) >= 1 && Number(raw) <= 65535
        ? { value: Number(raw) }
        : { problem: `${f.variable}: expected a port number from 1 to 65535, got ${got}` };
    case 'flag':
      return raw === '0' || raw === '1' ? { value: raw === '1' } : { problem: `${f.variable}: expected 0 or 1, got ${got}` };
    case 'path':
      return raw.startsWith('/') ? { value: raw } : { problem: `${f.variable}: expected an absolute path on the device, got ${got}` };
    case 'interface':
      return new RegExp(`^${INTERFACE_NAME_PATTERN}$`).test(raw)
        ? { value: raw }
        : { problem: `${f.variable}: expected a network interface name such as eth0, got ${got}` };
    case 'group':
      return new RegExp(`^${GROUP_NAME_PATTERN}$`).test(raw)
        ? { value: raw }
        : { problem: `${f.variable}: expected a group name such as ggcore (a-z 0-9 _ -, at most 32), got ${got}` };
    case 'tpm-handle':
      return new RegExp(`^${TPM_HANDLE_PATTERN}$`).test(raw) && Number(raw) < TPM_OWNER_HANDLES.last
        ? { value: raw }
        : { problem: `${f.variable}: expected a persistent TPM handle from 0x81000000 to 0x817ffffe, such as 0x81000002, got ${got}` };
    case 'tcti':
      return new RegExp(`^${TCTI_PATTERN}$`).test(raw)
        ? { value: raw }
        : { problem: `${f.variable}: expected a TCTI such as device:/dev/tpmrm0 or tabrmd (name[:options], no spaces), got ${got}` };
    case 'choice':
      return f.choices?.includes(raw) ? { value: raw } : { problem: `${f.variable}: expected one of ${f.choices?.join(', ')}, got ${got}` };
    case 'json-map': {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        parsed = undefined;
      }
      const ok = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) && Object.values(parsed).every((v) => typeof v === 'string');
      return ok ? { value: parsed } : { problem: `${f.variable}: expected a JSON object of strings such as {"DeviceId": "\${deviceId}"}` };
    }
    case 'proxy-url': {
      // The value may hold a password: the message never shows it.
      const port = Number(/:([0-9]+)\/?$/.exec(raw)?.[1] ?? 0);
      return new RegExp(`^${PROXY_URL_PATTERN}$`).test(raw) && port >= 1 && port <= 65535
        ? { value: raw }
        : { problem: `${f.variable}: expected an http:// proxy URL with a port, http://[user:password@]host:port (https:// proxies are not supported)` };
    }
    case 'string':
      return { value: raw };
  }
}

/** Pure: the recipe's fleetprov_config for these variable values (unset ones take the recipe's defaults). */
export function recipeConfig(values: RecipeValues): RecipeConfig {
  const doc: Node = {};
  for (const f of CONFIG_FIELDS) {
    const raw = valueOf(values, f.variable);
    if (!raw) {
      if (f.required) return { text: null, problem: `${f.variable} is not set: \`fp-yocto init\` writes it into conf/fleetprovisioning.conf` };
      const when = f.requiredWhen;
      if (when && valueOf(values, when.variable) === when.value) {
        return { text: null, problem: `${f.variable} is not set: ${when.variable} = "${when.value}" needs it` };
      }
      continue;
    }
    const converted = convert(f, raw);
    if ('problem' in converted) return { text: null, problem: converted.problem };
    let node = doc;
    for (const part of f.key.slice(0, -1)) node = (node[part] ??= {}) as Node;
    node[f.key[f.key.length - 1]!] = converted.value;
  }
  // FLEETPROV_HANDOFF replaces FLEETPROV_GREENGRASS (whose default "0" the recipe always writes).
  const handoff = doc.handoff;
  if (handoff !== undefined) {
    const gg = (doc.greengrass ?? {}) as Node;
    if (gg.enabled === true && handoff !== 'greengrass') {
      return { text: null, problem: `FLEETPROV_GREENGRASS: expected 0 with FLEETPROV_HANDOFF = "${String(handoff)}" (FLEETPROV_HANDOFF replaces it)` };
    }
    delete gg.enabled;
  }
  // The AWS IoT Device Client reads its key from a file: not from the TPM (the agent says the same).
  if (handoff === 'device-client' && ((doc.key ?? {}) as Node).store === 'tpm') {
    return { text: null, problem: 'FLEETPROV_HANDOFF: expected greengrass or none with FLEETPROV_KEY_STORE = "tpm" (the AWS IoT Device Client reads its key from a file)' };
  }
  doc.claimCertPath = CONFIG_CONSTANTS.claimCertPath;
  doc.claimKeyPath = CONFIG_CONSTANTS.claimKeyPath;
  doc.rootCaPath = CONFIG_CONSTANTS.rootCaPath;
  doc.outputDir = CONFIG_CONSTANTS.outputDir;
  const gg = (doc.greengrass ??= {}) as Node;
  gg.configDropIn = CONFIG_CONSTANTS.greengrass.configDropIn;
  gg.restartTarget = CONFIG_CONSTANTS.greengrass.restartTarget;

  const emit = (node: Node, indent: string): string[] =>
    Object.entries(node).flatMap(([k, v]) => {
      const name = /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? k : pyJson(k);
      if (v && typeof v === 'object' && Object.keys(v).length) return [`${indent}${name}:`, ...emit(v as Node, `${indent}  `)];
      return [`${indent}${name}: ${pyJson(v)}`];
    });
  return { text: [HEADER, ...emit(doc, '')].join('\n') + '\n', problem: null };
}

/** config.yaml for these values; throws the recipe's message where bitbake would skip the recipe. */
export function recipeConfigYaml(values: RecipeValues): string {
  const result = recipeConfig(values);
  if (result.problem !== null) throw new Error(result.problem);
  return result.text;
}
