// Where things live on the device (DESIGN.md "On the device"). The agent, the layer's recipes and
// the cloud's generated config all import these so that they cannot drift apart.

export const AGENT_BIN = '/usr/bin/fp-agent';
export const CONFIG_DIR = '/etc/fleetprovisioning';
export const CONFIG_FILE = `${CONFIG_DIR}/config.yaml`;
export const CLAIM_DIR = `${CONFIG_DIR}/claim`;
export const OUTPUT_DIR = '/var/lib/fleetprovisioning';

/** File names inside CLAIM_DIR (on the device) and inside the project's claim dir (on the build host). */
export const CLAIM_FILES = {
  cert: 'claim.cert.pem',
  key: 'claim.key.pem',
  rootCa: 'root-ca.pem',
} as const;

/**
 * File names inside the output dir. state.json is the commit point: it names the identity's three
 * files. A first identity uses the plain names below; one made by `provision --force` while the
 * plain names are in use gets generation names (identityFileNames), so the old identity stays
 * intact until state.json switches to the new one. Read the paths from state.json (or the drop-in).
 */
export const RESULT_FILES = {
  cert: 'device.cert.pem',
  key: 'device.key.pem',
  rootCa: 'root-ca.pem',
  state: 'state.json',
  deviceId: 'device-id',
} as const;

/** The identity's file names: plain, or for `generation` (12 hex digits of the certificate id). */
export function identityFileNames(generation?: string): { cert: string; key: string; rootCa: string } {
  if (!generation) return { cert: RESULT_FILES.cert, key: RESULT_FILES.key, rootCa: RESULT_FILES.rootCa };
  return { cert: `device.${generation}.cert.pem`, key: `device.${generation}.key.pem`, rootCa: `root-ca.${generation}.pem` };
}

export const GREENGRASS_DROP_IN = '/etc/greengrass/config.d/zz-fleetprovisioning.yaml';
export const GREENGRASS_TARGET = 'greengrass-lite.target';
/** meta-aws runs every Greengrass lite service as gg_user:gg_group = ggcore:ggcore (greengrass-lite_*.bb). */
export const GREENGRASS_GROUP = 'ggcore';

/**
 * The AWS IoT Device Client's config, where its unit reads it: setup/aws-iot-device-client.service
 * (Environment="CONF_PATH=/etc/.aws-iot-device-client/aws-iot-device-client.conf"), which meta-aws's
 * aws-iot-device-client recipe installs as it is.
 */
export const DEVICE_CLIENT_CONFIG = '/etc/.aws-iot-device-client/aws-iot-device-client.conf';
export const DEVICE_CLIENT_UNIT = 'aws-iot-device-client.service';
/**
 * Its HTTP proxy config, under the home of the user its unit runs as (root: setup/aws-iot-device-client.service
 * has no User=): Config::DEFAULT_HTTP_PROXY_CONFIG_FILE, "~/.aws-iot-device-client/http-proxy.conf"
 * (docs/HTTP_PROXY.md), read unless it is started with --http-proxy-config. Root's home comes from
 * /etc/passwd at run time: Yocto's ROOT_HOME is /home/root unless a distro sets /root.
 */
export const DEVICE_CLIENT_HTTP_PROXY_CONFIG_IN_HOME = '.aws-iot-device-client/http-proxy.conf';

export const UNITS = {
  identify: 'ggl.gg_pre-fleetprovisioning.service',
  provision: 'ggl.gg_fleetprovisioning.service',
} as const;

/** Mode of every private key file (standalone, and on the build host), from the moment it is created. */
export const PRIVATE_KEY_MODE = 0o600;

/** Who may read a result: owner root always; group root, or the Greengrass group (greengrass.group). */
export interface ResultAccess {
  mode: number;
  group: 'root' | 'greengrass';
}

export type ResultKind = 'dir' | 'key' | 'cert' | 'rootCa' | 'state' | 'deviceId';

/**
 * Owner and mode of the output directory and of each result file, from the moment it exists; the
 * layer's do_install uses the same table for the directory. With Greengrass, its services (which
 * run as the Greengrass group) read key, certificate and root CA through the 0750 directory, and
 * nobody else can; state.json and device-id stay root's. Standalone, everything is root's alone.
 */
export const RESULT_ACCESS: Record<'greengrass' | 'standalone', Record<ResultKind, ResultAccess>> = {
  greengrass: {
    dir: { mode: 0o750, group: 'greengrass' },
    key: { mode: 0o640, group: 'greengrass' },
    cert: { mode: 0o644, group: 'greengrass' },
    rootCa: { mode: 0o644, group: 'greengrass' },
    state: { mode: 0o644, group: 'root' },
    deviceId: { mode: 0o644, group: 'root' },
  },
  standalone: {
    dir: { mode: 0o700, group: 'root' },
    key: { mode: PRIVATE_KEY_MODE, group: 'root' },
    cert: { mode: 0o644, group: 'root' },
    rootCa: { mode: 0o644, group: 'root' },
    state: { mode: 0o644, group: 'root' },
    deviceId: { mode: 0o644, group: 'root' },
  },
};
