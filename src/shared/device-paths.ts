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

/** File names inside the output dir. state.json is the commit point and is written last. */
export const RESULT_FILES = {
  cert: 'device.cert.pem',
  key: 'device.key.pem',
  rootCa: 'root-ca.pem',
  state: 'state.json',
  deviceId: 'device-id',
} as const;

export const GREENGRASS_DROP_IN = '/etc/greengrass/config.d/zz-fleetprovisioning.yaml';
export const GREENGRASS_TARGET = 'greengrass-lite.target';

export const UNITS = {
  identify: 'ggl.gg_pre-fleetprovisioning.service',
  provision: 'ggl.gg_fleetprovisioning.service',
} as const;

/** Mode of every private key file, from the moment it is created. */
export const PRIVATE_KEY_MODE = 0o600;
