// The AWS IoT Device Client's documented config, as a table: it publishes no JSON schema, so each
// key, type and permission rule below cites where it is documented or read
// (github.com/awslabs/aws-iot-device-client, read at 2e20e21, Jan 2026). Test code: it checks
// what fp-agent writes for the Device Client, and the identity files that config names.
import { stat } from 'node:fs/promises';
import path from 'node:path';

type Type = 'string' | 'boolean' | 'integer' | 'object' | 'array';

interface KeySpec {
  type: Type;
  /** Where the key is documented or parsed. */
  source: string;
  /** Read as a file path and checked at start (mode and owner, FileUtils::ValidateFilePermissions). */
  file?: { mode: number; dirMode: number; required: boolean; source: string };
  /** Validate() refuses to start without it (unless noted). */
  required?: boolean;
  keys?: Record<string, KeySpec>;
}

const CONFIG_CPP = 'source/config/Config.cpp PlainConfig::LoadFromJson, JSON_KEY_* (Config.h)';
const TEMPLATE = 'config-template.json';

/** Top-level keys of the Device Client's JSON config. */
export const DEVICE_CLIENT_SCHEMA: Record<string, KeySpec> = {
  endpoint: { type: 'string', required: true, source: `${TEMPLATE}; ${CONFIG_CPP}; Validate(): "Endpoint is missing"` },
  cert: {
    type: 'string',
    required: true,
    source: `${TEMPLATE}; ${CONFIG_CPP}; Validate(): "Certificate is missing"`,
    file: { mode: 0o644, dirMode: 0o700, required: true, source: 'docs/PERMISSIONS.md "Public Certificates 644", "Directory Storing Public Certificates 700"; SharedCrtResourceManager.cpp Permissions::PUBLIC_CERT, CERT_DIR' },
  },
  key: {
    type: 'string',
    required: true,
    source: `${TEMPLATE}; ${CONFIG_CPP}; Validate(): "Private Key is missing" (unless secure-element is enabled)`,
    file: { mode: 0o600, dirMode: 0o700, required: true, source: 'docs/PERMISSIONS.md "Private Keys 600", "Directory Storing Private Key 700"; SharedCrtResourceManager.cpp Permissions::PRIVATE_KEY, KEY_DIR' },
  },
  'root-ca': {
    type: 'string',
    source: `${TEMPLATE}; ${CONFIG_CPP} (a missing file falls back to the default trust store)`,
    file: { mode: 0o644, dirMode: 0o700, required: true, source: 'docs/PERMISSIONS.md "Root Certificate Authority 644", "Directory Storing Root Certificate Authority 700"; Config.cpp Validate() Permissions::ROOT_CA, ROOT_CA_DIR' },
  },
  'thing-name': { type: 'string', required: true, source: `${TEMPLATE}; ${CONFIG_CPP}; Validate(): "Thing name is missing"` },
  logging: {
    type: 'object',
    source: `${TEMPLATE}; Config.cpp LogConfig::LoadFromJson`,
    keys: {
      level: { type: 'string', source: 'LogConfig JSON_KEY_LOG_LEVEL' },
      type: { type: 'string', source: 'LogConfig JSON_KEY_LOG_TYPE' },
      file: { type: 'string', source: 'LogConfig JSON_KEY_LOG_FILE' },
      'enable-sdk-logging': { type: 'boolean', source: 'LogConfig JSON_KEY_ENABLE_SDK_LOGGING' },
      'sdk-log-level': { type: 'string', source: 'LogConfig JSON_KEY_SDK_LOG_LEVEL' },
      'sdk-log-file': { type: 'string', source: 'LogConfig JSON_KEY_SDK_LOG_FILE' },
    },
  },
  jobs: { type: 'object', source: `${TEMPLATE}; Config.cpp Jobs::LoadFromJson`, keys: { enabled: { type: 'boolean', source: 'Jobs JSON_KEY_ENABLED' }, 'handler-directory': { type: 'string', source: 'Jobs JSON_KEY_HANDLER_DIR' } } },
  tunneling: { type: 'object', source: `${TEMPLATE}; Config.cpp Tunneling::LoadFromJson`, keys: { enabled: { type: 'boolean', source: 'Tunneling JSON_KEY_ENABLED' }, endpoint: { type: 'string', source: 'Tunneling JSON_KEY_ENDPOINT' } } },
  'device-defender': { type: 'object', source: `${TEMPLATE}; Config.cpp DeviceDefender::LoadFromJson`, keys: { enabled: { type: 'boolean', source: 'DeviceDefender JSON_KEY_ENABLED' }, interval: { type: 'integer', source: 'DeviceDefender JSON_KEY_INTERVAL' } } },
  'fleet-provisioning': {
    type: 'object',
    source: `${TEMPLATE}; source/fleetprovisioning/README.md "Fleet Provisioning Feature Configuration Options"; Config.cpp FleetProvisioning::LoadFromJson`,
    keys: {
      enabled: { type: 'boolean', required: true, source: 'fleetprovisioning/README.md "Required Parameters: enabled"' },
      'template-name': { type: 'string', source: 'fleetprovisioning/README.md "template-name"' },
      'template-parameters': { type: 'string', source: 'fleetprovisioning/README.md "A JSON object specified as an escaped string"' },
      'csr-file': { type: 'string', source: 'fleetprovisioning/README.md "csr-file"' },
      'device-key': { type: 'string', source: 'fleetprovisioning/README.md "device-key"' },
      'publish-sys-info': { type: 'boolean', source: 'FleetProvisioning JSON_KEY_PUBLISH_SYS_INFO' },
    },
  },
  'runtime-config': { type: 'object', source: 'fleetprovisioning/README.md "Fleet Provisioning Runtime Configuration File"' },
  samples: { type: 'object', source: `${TEMPLATE} samples.pub-sub` },
  'config-shadow': { type: 'object', source: `${TEMPLATE}` },
  'sample-shadow': { type: 'object', source: `${TEMPLATE}` },
  'secure-element': { type: 'object', source: `${TEMPLATE}; source/secure-element/README.md` },
  'sensor-publish': { type: 'object', source: 'source/sensor-publish/README.md' },
};

/** The config file itself: 640 in a 745 directory (recommended: the Device Client warns otherwise). */
export const DEVICE_CLIENT_CONFIG_FILE_RULE = { mode: 0o640, dirMode: 0o745, source: 'docs/PERMISSIONS.md "Config File 640", "Directory Storing Config Files 745"; Config.h Permissions::CONFIG_FILE, CONFIG_DIR' };

const typeOf = (v: unknown): Type | 'other' =>
  typeof v === 'string' ? 'string' : typeof v === 'boolean' ? 'boolean' : Number.isInteger(v) ? 'integer' : Array.isArray(v) ? 'array' : typeof v === 'object' && v !== null ? 'object' : 'other';

/** Every way `doc` departs from the table: unknown keys, wrong types, missing required keys. */
export function schemaProblems(doc: Record<string, unknown>, schema = DEVICE_CLIENT_SCHEMA, prefix = ''): string[] {
  const problems: string[] = [];
  for (const [key, value] of Object.entries(doc)) {
    const spec = schema[key];
    if (!spec) problems.push(`${prefix}${key}: not a key the Device Client documents`);
    else if (typeOf(value) !== spec.type) problems.push(`${prefix}${key}: ${typeOf(value)}, expected ${spec.type} (${spec.source})`);
    else if (spec.keys) problems.push(...schemaProblems(value as Record<string, unknown>, spec.keys, `${prefix}${key}.`));
  }
  for (const [key, spec] of Object.entries(schema)) if (spec.required && !(key in doc)) problems.push(`${prefix}${key}: missing (${spec.source})`);
  return problems;
}

/** Every permission rule the Device Client checks at start that the files named in `doc` break. */
export async function permissionProblems(doc: Record<string, unknown>, runAsUid = 0): Promise<string[]> {
  const problems: string[] = [];
  const modeOf = async (p: string) => {
    const s = await stat(p);
    return { mode: s.mode & 0o777, uid: s.uid };
  };
  for (const [key, spec] of Object.entries(DEVICE_CLIENT_SCHEMA)) {
    if (!spec.file || typeof doc[key] !== 'string') continue;
    const file = doc[key] as string;
    for (const [what, p, mode] of [['file', file, spec.file.mode], ['directory', path.dirname(file), spec.file.dirMode]] as const) {
      const actual = await modeOf(p).catch(() => undefined);
      if (!actual) problems.push(`${key}: ${what} ${p} does not exist`);
      else if (actual.mode !== mode) problems.push(`${key}: ${what} ${p} has mode ${actual.mode.toString(8)}, the Device Client wants ${mode.toString(8)} (${spec.file.source})`);
      // FileUtils::ValidateFileOwnershipPermissions: owned by the user it runs as, unless that is root.
      else if (runAsUid !== 0 && actual.uid !== runAsUid) problems.push(`${key}: ${what} ${p} is not owned by uid ${runAsUid}`);
    }
  }
  return problems;
}

const PROXY_DOC = 'docs/HTTP_PROXY.md "Configuration options"';
const PROXY_CPP = 'source/config/Config.cpp HttpProxyConfig::LoadFromJson / Validate';

/** Its HTTP proxy config (~/.aws-iot-device-client/http-proxy.conf): keys and types as it reads them. */
export const DEVICE_CLIENT_PROXY_SCHEMA: Record<string, KeySpec> = {
  'http-proxy-enabled': { type: 'boolean', required: true, source: `${PROXY_DOC} "read in as boolean"; ${PROXY_CPP} GetBool` },
  'http-proxy-host': { type: 'string', required: true, source: `${PROXY_DOC}; ${PROXY_CPP} GetString` },
  'http-proxy-port': { type: 'string', required: true, source: `${PROXY_DOC} "we read this field in string format"; ${PROXY_CPP} GetString + stoi` },
  'http-proxy-auth-method': { type: 'string', required: true, source: `${PROXY_DOC} "UserNameAndPassword or None"; ${PROXY_CPP}` },
  'http-proxy-username': { type: 'string', source: `${PROXY_DOC} "Optional"; ${PROXY_CPP} (required with UserNameAndPassword)` },
  'http-proxy-password': { type: 'string', source: `${PROXY_DOC} "Optional"; ${PROXY_CPP} (required with UserNameAndPassword)` },
};

/** The file and its directory as the Device Client checks them (Config.cpp ParseConfigFile). */
export const DEVICE_CLIENT_PROXY_FILE_RULE = { mode: 0o600, dirMode: 0o745, source: `${PROXY_DOC} "Permissions"; Config.h Permissions::HTTP_PROXY_CONFIG_FILE, CONFIG_DIR` };

/** Everything HttpProxyConfig::Validate (with ProxyUtils) would refuse, beyond the table's types. */
export function proxyConfigProblems(doc: Record<string, unknown>): string[] {
  const problems = schemaProblems(doc, DEVICE_CLIENT_PROXY_SCHEMA);
  if (doc['http-proxy-enabled'] !== true) return problems;
  const host = String(doc['http-proxy-host'] ?? '');
  const octets = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host)?.slice(1).map(Number);
  // ProxyUtils::ValidateHostIpAddress: inet_pton(AF_INET) and IsIpAddressPrivate.
  const [a, b] = octets ?? [];
  const isPrivate = octets !== undefined && octets.every((o) => o <= 255) && (a === 10 || (a === 172 && b! >= 16 && b! <= 31) || (a === 192 && b === 168));
  if (!isPrivate) problems.push(`http-proxy-host: ${host} is not a private IPv4 address (ProxyUtils::ValidateHostIpAddress)`);
  const port = Number(doc['http-proxy-port']);
  if (!/^\d+$/.test(String(doc['http-proxy-port'])) || port < 1 || port > 65_535) problems.push('http-proxy-port: not 1-65535 (ProxyUtils::ValidatePortNumber)');
  const method = doc['http-proxy-auth-method'];
  if (method !== 'UserNameAndPassword' && method !== 'None') problems.push(`http-proxy-auth-method: ${String(method)} is neither UserNameAndPassword nor None`);
  if (method === 'UserNameAndPassword') {
    for (const key of ['http-proxy-username', 'http-proxy-password']) if (!doc[key]) problems.push(`${key}: required with UserNameAndPassword`);
  }
  return problems;
}
