// The agent's configuration file (DESIGN.md "Config"): its schema, defaults and parser.
// The agent reads it, the layer's config recipe writes it, `init` fills in its values.
// Every rejection names the file and the field, and says what was expected.
import { isMap, isScalar, isSeq, parseDocument } from 'yaml';
import { CLAIM_DIR, CLAIM_FILES, DEVICE_CLIENT_CONFIG, DEVICE_CLIENT_UNIT, GREENGRASS_DROP_IN, GREENGRASS_GROUP, GREENGRASS_TARGET, OUTPUT_DIR } from './device-paths.ts';
import { ConfigError } from './errors.ts';
import { parseProxyUrl, PROXY_URL_EXPECTED, type ProxyUrl } from './proxy-url.ts';
import { parseSimpleYaml } from './simple-yaml.ts';

export const DEVICE_ID_SOURCES = ['mac', 'machine-id', 'device-tree-serial', 'dmi-serial', 'file'] as const;
export type DeviceIdSource = (typeof DEVICE_ID_SOURCES)[number];

/**
 * How the device id is written. For MAC addresses: lower-case hex with no separator (`plain`)
 * or with `:`, `-` or `_`. `raw` keeps the value as read (trimmed). Other sources are trimmed,
 * lower-cased and stripped of characters a thing name cannot hold, except with `raw`.
 */
export const DEVICE_ID_FORMATS = ['plain', 'colon', 'dash', 'underscore', 'raw'] as const;
export type DeviceIdFormat = (typeof DEVICE_ID_FORMATS)[number];

/** A Linux network interface name (IFNAMSIZ - 1); the config recipe checks the same pattern. */
export const INTERFACE_NAME_PATTERN = String.raw`[^\s/]{1,15}`;

/**
 * A group name as shadow-utils' groupadd accepts it by default (and useradd.bbclass passes on):
 * a lower-case letter or _, then lower-case letters, digits, _ or -, at most 32 characters.
 */
export const GROUP_NAME_PATTERN = '[a-z_][a-z0-9_-]{0,31}';

/** Who gets the identity: Greengrass nucleus lite, the AWS IoT Device Client, or nobody (docs/agent.md). */
export const HANDOFFS = ['greengrass', 'device-client', 'none'] as const;
export type Handoff = (typeof HANDOFFS)[number];

export const KEY_ALGORITHMS = ['ec-p256', 'rsa-2048'] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];

/** Where the device key lives: a PEM file in outputDir, or a persistent object in a TPM 2.0 (docs/agent.md "TPM 2.0"). */
export const KEY_STORES = ['file', 'tpm'] as const;
export type KeyStore = (typeof KEY_STORES)[number];

/**
 * Persistent handles in the owner hierarchy (TPM 2.0 Library Part 2, "Persistent Handles"). The
 * agent uses two: key.tpmHandle and the next one (for the pending key of `provision --force`).
 * 0x81000001 is the TCG's storage root key (TCG "Registry of Reserved TPM 2.0 Handles"), hence
 * the default 0x81000002, the handle Greengrass lite's docs/TPM_SUPPORT.md uses for the device key.
 */
export const TPM_OWNER_HANDLES = { first: 0x81000000, last: 0x817fffff } as const;
export const TPM_HANDLE_PATTERN = '0x81[0-7][0-9a-fA-F]{5}';

/** A TSS2 TCTI configuration string, name[:options] (tpm2-tss's tctildr): device:/dev/tpmrm0, tabrmd, swtpm:port=2321. */
export const TCTI_PATTERN = '[a-z][a-z0-9-]*(:[!-~]*)?';

export interface AgentConfig {
  iotDataEndpoint: string;
  iotCredEndpoint?: string;
  /** 8883, or 443 (then ALPN x-amzn-mqtt-ca); any port for the emulator. */
  port: number;
  awsRegion?: string;
  iotRoleAlias?: string;
  templateName: string;
  /** Values may contain `${deviceId}`, replaced by the device id. */
  templateParams: Record<string, string>;
  /** The claim connection's MQTT client id is this prefix + the device id (the claim policy allows only it). */
  clientIdPrefix: string;
  claimCertPath: string;
  claimKeyPath: string;
  rootCaPath: string;
  deviceId: {
    source: DeviceIdSource;
    /** For `mac`: the interface to read; default: the one holding the default route. */
    interface?: string;
    /** For `file`: the file holding the id. */
    path?: string;
    format: DeviceIdFormat;
  };
  key: {
    algorithm: KeyAlgorithm;
    /** An existing device key (secure element, TPM-backed file); used with csrPath. */
    devicePrivateKeyPath?: string;
    /** An existing CSR to send instead of making one. */
    csrPath?: string;
    /** Let AWS make the key pair (CreateKeysAndCertificate) instead of a CSR made on the device. */
    createKeysAndCertificate: boolean;
    store: KeyStore;
    /** With store tpm: the persistent handle of the device key (and tpmHandle + 1 for a pending one). */
    tpmHandle: number;
    /** With store tpm: the TSS2 TCTI the TPM is reached by (TPM2TOOLS_TCTI / TPM2OPENSSL_TCTI). */
    tpmTcti: string;
  };
  outputDir: string;
  /** Who gets the identity. `greengrass.enabled: true` is the old spelling of `handoff: greengrass`. */
  handoff: Handoff;
  greengrass: {
    /** handoff === 'greengrass' (kept for the code and configs that read it). */
    enabled: boolean;
    configDropIn: string;
    restartTarget: string;
    /** The group Greengrass lite's services run as: it may read the device identity. */
    group: string;
  };
  deviceClient: {
    /** The AWS IoT Device Client's JSON config (its unit's CONF_PATH). */
    configFile: string;
    /** Restarted after the config changes: it reads the identity only at start. */
    unit: string;
    /** Its HTTP proxy config, written when the agent went through a proxy (docs/proxy.md); unset: under root's home. */
    httpProxyConfigFile?: string;
  };
  retry: {
    initialDelayMs: number;
    maxDelayMs: number;
    /** Give up on transient faults after this long (exit 75; systemd restarts the unit). */
    deadlineMs: number;
    /** Limit on one connect or one request/reply exchange. */
    attemptTimeoutMs: number;
  };
  removeClaimKeyAfterSuccess: boolean;
  /**
   * An HTTP CONNECT proxy for MQTT (docs/proxy.md). Each field wins over the environment's
   * https_proxy / no_proxy; absent: the environment decides.
   */
  proxy?: {
    url?: ProxyUrl;
    /** curl's no_proxy syntax: host suffixes, IPs, `host:port`, `*`; comma or space separated. */
    noProxy?: string;
  };
}

export const CONFIG_DEFAULTS = {
  port: 8883,
  templateParams: {},
  clientIdPrefix: 'fleetprov-',
  claimCertPath: `${CLAIM_DIR}/${CLAIM_FILES.cert}`,
  claimKeyPath: `${CLAIM_DIR}/${CLAIM_FILES.key}`,
  rootCaPath: `${CLAIM_DIR}/${CLAIM_FILES.rootCa}`,
  deviceId: { source: 'mac', format: 'plain' },
  key: { algorithm: 'ec-p256', createKeysAndCertificate: false, store: 'file', tpmHandle: 0x81000002, tpmTcti: 'device:/dev/tpmrm0' },
  outputDir: OUTPUT_DIR,
  handoff: 'none',
  greengrass: { enabled: false, configDropIn: GREENGRASS_DROP_IN, restartTarget: GREENGRASS_TARGET, group: GREENGRASS_GROUP },
  deviceClient: { configFile: DEVICE_CLIENT_CONFIG, unit: DEVICE_CLIENT_UNIT },
  retry: { initialDelayMs: 1_000, maxDelayMs: 60_000, deadlineMs: 300_000, attemptTimeoutMs: 15_000 },
  removeClaimKeyAfterSuccess: false,
} as const satisfies Omit<AgentConfig, 'iotDataEndpoint' | 'templateName'>;

/** Keys of Greengrass lite's `aws.greengrass.fleet_provisioning` configuration, mapped to ours. */
export const GREENGRASS_LITE_ALIASES: Record<string, string> = {
  mqttPort: 'port',
  csrPath: 'key.csrPath',
};

const TOP_LEVEL_KEYS = [
  'iotDataEndpoint',
  'iotCredEndpoint',
  'port',
  'awsRegion',
  'iotRoleAlias',
  'templateName',
  'templateParams',
  'clientIdPrefix',
  'claimCertPath',
  'claimKeyPath',
  'rootCaPath',
  'deviceId',
  'key',
  'outputDir',
  'handoff',
  'greengrass',
  'deviceClient',
  'retry',
  'removeClaimKeyAfterSuccess',
  'proxy',
] as const;

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parses and validates config.yaml text. `file` is only used in messages. YAML warnings (an
 * unknown tag, say) go to `onWarning` as one line naming the key; the value is read as if untagged.
 */
export function parseAgentConfig(text: string, file: string, onWarning: (line: string) => void = () => undefined): AgentConfig {
  // The layer writes config.yaml in the small subset simple-yaml.ts reads without a YAML library.
  const simple = parseSimpleYaml(text);
  if (simple) return validateAgentConfig(simple, file);
  // parseDocument collects warnings instead of printing them with a code frame, as parse() does.
  const doc = parseDocument(text, { prettyErrors: false });
  const [error] = doc.errors;
  if (error) {
    const line = lineOf(text, error.pos[0]);
    // yaml's message may carry a position and a code frame: keep the reason.
    const reason = error.message.split(/ at line \d+|\n/)[0];
    throw new ConfigError(file, `line ${line}`, `valid YAML (${reason})`);
  }
  for (const warning of doc.warnings) {
    const where = keyPathAt(doc.contents, warning.pos[0]) ?? `line ${lineOf(text, warning.pos[0])}`;
    const reason = warning.code === 'TAG_RESOLVE_FAILED' ? `unknown tag ${text.slice(warning.pos[0], warning.pos[1])}, read as if untagged` : warning.message.split('\n')[0];
    onWarning(`${file}: ${where}: ${reason}`);
  }
  return validateAgentConfig(doc.toJS() ?? {}, file);
}

const lineOf = (text: string, offset: number): number => text.slice(0, offset).split('\n').length;

type Ranged = { range?: [number, number, number] } | null | undefined;

/** The dotted key path of the value at `offset` (a tag, say), or undefined outside any value. */
function keyPathAt(node: unknown, offset: number, prefix = ''): string | undefined {
  const start = (n: unknown) => (n as Ranged)?.range?.[0] ?? Infinity;
  const end = (n: unknown) => (n as Ranged)?.range?.[2] ?? -Infinity;
  if (isMap(node)) {
    for (const pair of node.items) {
      // From the key to the end of the value: a tag sits between them, outside the value's range.
      if (offset < start(pair.key) || offset > Math.max(end(pair.key), end(pair.value))) continue;
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const path = prefix ? `${prefix}.${key}` : key;
      return keyPathAt(pair.value, offset, path) ?? path;
    }
  } else if (isSeq(node)) {
    for (const [index, item] of node.items.entries()) {
      if (offset >= start(item) - 1 && offset <= end(item)) return keyPathAt(item, offset, `${prefix}[${index}]`) ?? `${prefix}[${index}]`;
    }
  }
  return undefined;
}

/** Validates an already parsed document; the Greengrass lite layout and key names are accepted. */
export function validateAgentConfig(doc: unknown, file: string): AgentConfig {
  const v = new Validator(file);
  v.noNulBytes(doc, '');
  const raw = v.object(unwrapGreengrassLite(doc), '(document)');
  const input = applyAliases(tpmKeyPaths(raw, v));
  v.noUnknownKeys(input, TOP_LEVEL_KEYS, '');

  const deviceId = v.object(input.deviceId ?? {}, 'deviceId');
  v.noUnknownKeys(deviceId, ['source', 'interface', 'path', 'format'], 'deviceId.');
  const key = v.object(input.key ?? {}, 'key');
  v.noUnknownKeys(key, ['algorithm', 'devicePrivateKeyPath', 'csrPath', 'createKeysAndCertificate', 'store', 'tpmHandle', 'tpmTcti'], 'key.');
  const greengrass = v.object(input.greengrass ?? {}, 'greengrass');
  v.noUnknownKeys(greengrass, ['enabled', 'configDropIn', 'restartTarget', 'group'], 'greengrass.');
  const deviceClient = v.object(input.deviceClient ?? {}, 'deviceClient');
  v.noUnknownKeys(deviceClient, ['configFile', 'unit', 'httpProxyConfigFile'], 'deviceClient.');
  const handoff = v.handoff(input.handoff, greengrass.enabled);
  const retry = v.object(input.retry ?? {}, 'retry');
  const proxy = v.object(input.proxy ?? {}, 'proxy');
  v.noUnknownKeys(proxy, ['url', 'username', 'password', 'noProxy'], 'proxy.');
  v.noUnknownKeys(retry, ['initialDelayMs', 'maxDelayMs', 'deadlineMs', 'attemptTimeoutMs'], 'retry.');

  const d = CONFIG_DEFAULTS;
  const config: AgentConfig = {
    iotDataEndpoint: v.hostname(input.iotDataEndpoint, 'iotDataEndpoint'),
    iotCredEndpoint: v.optional(input.iotCredEndpoint, 'iotCredEndpoint', v.hostname),
    port: v.integer(input.port ?? d.port, 'port', 1, 65_535),
    awsRegion: v.optional(input.awsRegion, 'awsRegion', v.region),
    iotRoleAlias: v.optional(input.iotRoleAlias, 'iotRoleAlias', v.string),
    templateName: v.templateName(input.templateName, 'templateName'),
    templateParams: v.templateParams(input.templateParams ?? d.templateParams, 'templateParams'),
    clientIdPrefix: v.clientIdPrefix(input.clientIdPrefix ?? d.clientIdPrefix, 'clientIdPrefix'),
    claimCertPath: v.absolutePath(input.claimCertPath ?? d.claimCertPath, 'claimCertPath'),
    claimKeyPath: v.absolutePath(input.claimKeyPath ?? d.claimKeyPath, 'claimKeyPath'),
    rootCaPath: v.absolutePath(input.rootCaPath ?? d.rootCaPath, 'rootCaPath'),
    deviceId: {
      source: v.oneOf(deviceId.source ?? d.deviceId.source, 'deviceId.source', DEVICE_ID_SOURCES),
      interface: v.optional(deviceId.interface, 'deviceId.interface', v.interfaceName),
      path: v.optional(deviceId.path, 'deviceId.path', v.absolutePath),
      format: v.oneOf(deviceId.format ?? d.deviceId.format, 'deviceId.format', DEVICE_ID_FORMATS),
    },
    key: {
      algorithm: v.oneOf(key.algorithm ?? d.key.algorithm, 'key.algorithm', KEY_ALGORITHMS),
      devicePrivateKeyPath: v.optional(key.devicePrivateKeyPath, 'key.devicePrivateKeyPath', v.absolutePath),
      csrPath: v.optional(key.csrPath, 'key.csrPath', v.absolutePath),
      createKeysAndCertificate: v.boolean(
        key.createKeysAndCertificate ?? d.key.createKeysAndCertificate,
        'key.createKeysAndCertificate',
      ),
      store: v.oneOf(key.store ?? d.key.store, 'key.store', KEY_STORES),
      tpmHandle: v.tpmHandle(key.tpmHandle ?? d.key.tpmHandle, 'key.tpmHandle'),
      tpmTcti: v.tcti(key.tpmTcti ?? d.key.tpmTcti, 'key.tpmTcti'),
    },
    outputDir: v.absolutePath(input.outputDir ?? d.outputDir, 'outputDir'),
    handoff,
    greengrass: {
      enabled: handoff === 'greengrass',
      configDropIn: v.absolutePath(greengrass.configDropIn ?? d.greengrass.configDropIn, 'greengrass.configDropIn'),
      restartTarget: v.unitName(greengrass.restartTarget ?? d.greengrass.restartTarget, 'greengrass.restartTarget'),
      group: v.groupName(greengrass.group ?? d.greengrass.group, 'greengrass.group'),
    },
    deviceClient: {
      configFile: v.absolutePath(deviceClient.configFile ?? d.deviceClient.configFile, 'deviceClient.configFile'),
      unit: v.unitName(deviceClient.unit ?? d.deviceClient.unit, 'deviceClient.unit'),
      ...(deviceClient.httpProxyConfigFile === undefined ? {} : { httpProxyConfigFile: v.absolutePath(deviceClient.httpProxyConfigFile, 'deviceClient.httpProxyConfigFile') }),
    },
    retry: {
      initialDelayMs: v.integer(retry.initialDelayMs ?? d.retry.initialDelayMs, 'retry.initialDelayMs', 1, 3_600_000),
      maxDelayMs: v.integer(retry.maxDelayMs ?? d.retry.maxDelayMs, 'retry.maxDelayMs', 1, 3_600_000),
      deadlineMs: v.integer(retry.deadlineMs ?? d.retry.deadlineMs, 'retry.deadlineMs', 1, 86_400_000),
      attemptTimeoutMs: v.integer(
        retry.attemptTimeoutMs ?? d.retry.attemptTimeoutMs,
        'retry.attemptTimeoutMs',
        100,
        600_000,
      ),
    },
    removeClaimKeyAfterSuccess: v.boolean(
      input.removeClaimKeyAfterSuccess ?? d.removeClaimKeyAfterSuccess,
      'removeClaimKeyAfterSuccess',
    ),
    ...v.proxy(proxy),
  };

  if (config.deviceId.source === 'file' && !config.deviceId.path) {
    throw new ConfigError(file, 'deviceId.path', 'an absolute path when deviceId.source is "file"');
  }
  if (config.retry.maxDelayMs < config.retry.initialDelayMs) {
    throw new ConfigError(file, 'retry.maxDelayMs', `a value >= retry.initialDelayMs (${config.retry.initialDelayMs})`);
  }
  if (config.key.devicePrivateKeyPath && config.key.createKeysAndCertificate) {
    throw new ConfigError(file, 'key.createKeysAndCertificate', 'false when key.devicePrivateKeyPath is set');
  }
  if (config.key.store === 'tpm' && config.key.devicePrivateKeyPath) {
    throw new ConfigError(file, 'key.devicePrivateKeyPath', 'unset when key.store is "tpm" (the key is made in the TPM at key.tpmHandle)');
  }
  if (config.key.store === 'tpm' && config.key.createKeysAndCertificate) {
    throw new ConfigError(file, 'key.createKeysAndCertificate', 'false when key.store is "tpm" (AWS would make the key, outside the TPM)');
  }
  if (config.key.store === 'tpm' && config.key.csrPath) {
    throw new ConfigError(file, 'key.csrPath', 'unset when key.store is "tpm" (the CSR is made and signed in the TPM)');
  }
  if (config.key.store === 'tpm' && config.handoff === 'device-client') {
    // Its config takes a key file it checks for mode 600 at start (docs/agent.md, "Device Client").
    throw new ConfigError(file, 'handoff', 'greengrass or none when key.store is "tpm" (the AWS IoT Device Client reads its key from a file)');
  }
  if (config.key.csrPath && !config.key.devicePrivateKeyPath) {
    throw new ConfigError(file, 'key.devicePrivateKeyPath', 'the path of the key that signed key.csrPath');
  }
  return config;
}

/**
 * Greengrass lite's fleet-provisioning keys in their TPM form ("fleet_provisioning.md": `keyPath:
 * "handle:0x81000001"` keeps the device key in the TPM): `keyPath` with a handle becomes key.store
 * tpm at that handle. A claim key in the TPM is refused by name: fp-yocto's claim key is a file
 * baked into the image for the whole fleet (docs/agent.md "TPM 2.0 device key").
 */
function tpmKeyPaths(input: Obj, v: Validator): Obj {
  const handle = (value: unknown) => (typeof value === 'string' ? /^handle:(\S*)$/.exec(value.trim())?.[1] : undefined);
  if (handle(input.claimKeyPath) !== undefined) {
    v.fail('claimKeyPath', 'the path of the claim key file (a claim key in the TPM is not supported: the claim key is shared by the fleet and baked into the image)');
  }
  if (!('keyPath' in input)) return input;
  const { keyPath, ...rest } = input;
  const at = handle(keyPath);
  if (at === undefined) v.fail('keyPath', 'a TPM handle such as "handle:0x81000002" (fp-agent chooses the names of key files itself)');
  const key = isObject(rest.key) ? rest.key : {};
  return { ...rest, key: { store: 'tpm', tpmHandle: at, ...key } };
}

/** Accepts a whole Greengrass lite config (services.aws.greengrass.fleet_provisioning.configuration). */
function unwrapGreengrassLite(doc: unknown): unknown {
  if (!isObject(doc) || !isObject(doc.services)) return doc;
  const service = doc.services['aws.greengrass.fleet_provisioning'];
  if (!isObject(service) || !isObject(service.configuration)) return doc;
  const system = isObject(doc.system) ? doc.system : {};
  const fromSystem = typeof system.rootCaPath === 'string' ? { rootCaPath: system.rootCaPath } : {};
  return { ...fromSystem, ...service.configuration };
}

function applyAliases(input: Obj): Obj {
  const out: Obj = { ...input };
  for (const [alias, target] of Object.entries(GREENGRASS_LITE_ALIASES)) {
    if (!(alias in out)) continue;
    const value = out[alias];
    delete out[alias];
    const [head, tail] = target.split('.') as [string, string | undefined];
    if (tail === undefined) out[head] ??= value;
    else out[head] = { [tail]: value, ...(isObject(out[head]) ? out[head] : {}) };
  }
  return out;
}

class Validator {
  constructor(private readonly file: string) {}

  fail(field: string, expected: string): never {
    throw new ConfigError(this.file, field || '(document)', expected);
  }

  object = (value: unknown, field: string): Obj => (isObject(value) ? value : this.fail(field, 'a mapping'));

  /** No key or string anywhere may hold a NUL: paths and names end at the first one in C. */
  noNulBytes(value: unknown, field: string): void {
    if (typeof value === 'string' && value.includes('\0')) this.fail(field, 'text without NUL bytes');
    if (Array.isArray(value)) value.forEach((item, i) => this.noNulBytes(item, `${field}[${i}]`));
    else if (isObject(value)) {
      for (const [key, item] of Object.entries(value)) {
        const path = field ? `${field}.${key.replaceAll('\0', '\\0')}` : key.replaceAll('\0', '\\0');
        if (key.includes('\0')) this.fail(path, 'a key without NUL bytes');
        this.noNulBytes(item, path);
      }
    }
  }

  noUnknownKeys(obj: Obj, known: readonly string[], prefix: string): void {
    for (const key of Object.keys(obj)) {
      if (known.includes(key)) continue;
      const near = closestKey(key, known);
      this.fail(`${prefix}${key}`, near ? `a known key: did you mean ${prefix}${near}?` : `one of the known keys (${known.join(', ')})`);
    }
  }

  optional = <T>(value: unknown, field: string, check: (v: unknown, f: string) => T): T | undefined =>
    value === undefined || value === null || value === '' ? undefined : check(value, field);

  string = (value: unknown, field: string): string =>
    typeof value === 'string' && value.trim() !== '' ? value.trim() : this.fail(field, 'a non-empty string');

  boolean = (value: unknown, field: string): boolean =>
    typeof value === 'boolean' ? value : this.fail(field, 'true or false');

  integer = (value: unknown, field: string, min: number, max: number): number => {
    const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
    return typeof n === 'number' && Number.isInteger(n) && n >= min && n <= max
      ? n
      : this.fail(field, `a whole number from ${min} to ${max}`);
  };

  oneOf = <T extends string>(value: unknown, field: string, allowed: readonly T[]): T =>
    allowed.includes(value as T) ? (value as T) : this.fail(field, `one of ${allowed.join(', ')}`);

  hostname = (value: unknown, field: string): string => {
    const s = this.string(value, field);
    return /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(s) ? s : this.fail(field, 'a host name such as xxxx-ats.iot.eu-west-1.amazonaws.com');
  };

  region = (value: unknown, field: string): string => {
    const s = this.string(value, field);
    return /^[a-z]{2}(-[a-z]+)+-\d$/.test(s) ? s : this.fail(field, 'an AWS region such as eu-west-1');
  };

  templateName = (value: unknown, field: string): string => {
    const s = this.string(value, field);
    return /^[0-9A-Za-z_-]{1,36}$/.test(s) ? s : this.fail(field, 'a provisioning template name (1-36 of A-Z a-z 0-9 _ -)');
  };

  clientIdPrefix = (value: unknown, field: string): string =>
    typeof value === 'string' && /^[0-9A-Za-z_:.-]{0,64}$/.test(value)
      ? value
      : this.fail(field, 'at most 64 of A-Z a-z 0-9 _ - : .');

  absolutePath = (value: unknown, field: string): string => {
    const s = this.string(value, field);
    return s.startsWith('/') ? s : this.fail(field, 'an absolute path');
  };

  interfaceName = (value: unknown, field: string): string => {
    const s = this.string(value, field);
    return new RegExp(`^${INTERFACE_NAME_PATTERN}$`).test(s) ? s : this.fail(field, 'a network interface name such as eth0');
  };

  groupName = (value: unknown, field: string): string => {
    const s = this.string(value, field);
    return new RegExp(`^${GROUP_NAME_PATTERN}$`).test(s) ? s : this.fail(field, 'a group name such as ggcore (a-z 0-9 _ -, at most 32)');
  };

  /** A persistent handle of the owner hierarchy, as 0x81xxxxxx text or a number; the next one must be one too. */
  tpmHandle = (value: unknown, field: string): number => {
    const n = typeof value === 'string' && new RegExp(`^${TPM_HANDLE_PATTERN}$`).test(value.trim()) ? Number(value.trim()) : value;
    const { first, last } = TPM_OWNER_HANDLES;
    return typeof n === 'number' && Number.isInteger(n) && n >= first && n < last
      ? n
      : this.fail(field, 'a persistent TPM handle from 0x81000000 to 0x817ffffe, such as 0x81000002');
  };

  /** A TSS2 TCTI configuration string such as device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321. */
  tcti = (value: unknown, field: string): string => {
    const s = this.string(value, field);
    return new RegExp(`^${TCTI_PATTERN}$`).test(s) ? s : this.fail(field, 'a TCTI such as device:/dev/tpmrm0 (name[:options], no spaces)');
  };

  /** `handoff`, or the old `greengrass.enabled` (true = greengrass); both set must agree. */
  handoff = (value: unknown, greengrassEnabled: unknown): Handoff => {
    const enabled = greengrassEnabled === undefined || greengrassEnabled === null ? undefined : this.boolean(greengrassEnabled, 'greengrass.enabled');
    if (value === undefined || value === null || value === '') return enabled ? 'greengrass' : 'none';
    const handoff = this.oneOf(value, 'handoff', HANDOFFS);
    if (enabled !== undefined && enabled !== (handoff === 'greengrass')) {
      this.fail('greengrass.enabled', `${handoff === 'greengrass' ? 'true or unset' : 'false or unset'} with handoff: ${handoff} (handoff replaces it)`);
    }
    return handoff;
  };

  /** The `proxy` block: the URL (its credentials, or username/password beside it) and noProxy. */
  proxy = (block: Obj): Pick<AgentConfig, 'proxy'> => {
    const text = this.optional(block.url, 'proxy.url', this.string);
    const noProxy = this.optional(block.noProxy, 'proxy.noProxy', this.string);
    const username = this.optional(block.username, 'proxy.username', this.string);
    // A password is taken as written: spaces may be part of it. Never echoed in a message.
    const password = block.password === undefined || block.password === null ? undefined : typeof block.password === 'string' ? block.password : this.fail('proxy.password', 'a string');
    let url: ProxyUrl | undefined;
    if (text !== undefined) url = parseProxyUrl(text) ?? this.fail('proxy.url', PROXY_URL_EXPECTED);
    if ((username !== undefined || password !== undefined) && !url) this.fail('proxy.url', 'a proxy URL when proxy.username or proxy.password is set');
    if (url && (username !== undefined || password !== undefined)) {
      if (url.username !== undefined) this.fail(username !== undefined ? 'proxy.username' : 'proxy.password', 'not set when proxy.url holds credentials');
      url = { ...url, username: username ?? '', ...(password === undefined ? {} : { password }) };
    }
    if (!url && noProxy === undefined) return {};
    return { proxy: { ...(url ? { url } : {}), ...(noProxy === undefined ? {} : { noProxy }) } };
  };

  unitName = (value: unknown, field: string): string => {
    const s = this.string(value, field);
    return /^[\w@:.\\-]+\.(service|target)$/.test(s) ? s : this.fail(field, 'a systemd unit name ending in .service or .target');
  };

  /** A map of strings; Greengrass lite also writes it as a JSON string. */
  templateParams = (value: unknown, field: string): Record<string, string> => {
    let obj = value;
    if (typeof value === 'string') {
      try {
        obj = JSON.parse(value);
      } catch {
        this.fail(field, 'a mapping of names to strings, or that mapping as JSON text');
      }
    }
    if (!isObject(obj)) this.fail(field, 'a mapping of names to strings');
    const out: Record<string, string> = {};
    for (const [name, v] of Object.entries(obj)) {
      if (!/^[0-9A-Za-z_:.-]{1,128}$/.test(name)) this.fail(`${field}.${name}`, 'a parameter name of A-Z a-z 0-9 _ - : .');
      if (typeof v === 'number' || typeof v === 'boolean') out[name] = String(v);
      else if (typeof v === 'string') out[name] = v;
      else this.fail(`${field}.${name}`, 'a string value');
    }
    return out;
  };
}

/** The known key a typo most likely meant: at most two edits away, or the same but for case. */
function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: { name: string; cost: number } | undefined;
  for (const name of known) {
    const cost = name.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key, name);
    if (cost <= 2 && (!best || cost < best.cost)) best = { name, cost };
  }
  return best?.name;
}

/** Levenshtein distance, with adjacent transpositions (tempalte -> template) counting as one edit. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** Replaces `${deviceId}` in every template parameter. */
export function expandTemplateParams(params: Record<string, string>, deviceId: string): Record<string, string> {
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v.replaceAll('${deviceId}', deviceId)]));
}
