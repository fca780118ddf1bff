// What the config recipe installs so that Greengrass nucleus lite can load a TPM device key:
// with FLEETPROV_KEY_STORE = "tpm" the agent's drop-in gives it system.privateKeyPath
// "handle:0x8100000N", which its services open with OSSL_STORE_open in OpenSSL's default library
// context (aws-greengrass-lite modules/iotcored/src/tls.c, modules/ggl-http/src/gghttp_util.c).
// A handle: URI resolves only with the tpm2 provider (tpm2-openssl) activated in the OpenSSL
// configuration, and the service's user must reach the TPM (aws-greengrass-lite
// docs/TPM_SUPPORT.md, "Configure OpenSSL TPM2 Provider" and "Configure User Permissions").
// The texts are made here once: the recipe template embeds them (the TCTI is filled in at build
// time) and the install manifest, hence the QEMU image, takes them from the same functions.
import { CONFIG_DEFAULTS } from '../shared/config.ts';
import { CONFIG_DIR } from '../shared/device-paths.ts';

/** The OpenSSL configuration of Greengrass lite's key-loading services; not /etc/ssl/openssl.cnf (oe-core's openssl-conf owns it). */
export const TPM_OPENSSL_CONF = `${CONFIG_DIR}/openssl-tpm2.cnf`;
/** The drop-in's name inside `<unit>.d/`. */
export const TPM_DROP_IN_NAME = '50-fleetprovisioning-tpm.conf';
/** The group owning /dev/tpmrm0: meta-tpm's tpm2-tss creates it and installs the udev rule. */
export const TPM_GROUP = 'tss';
/** The TCTI when FLEETPROV_TPM_TCTI is empty: the agent's default (key.tpmTcti). */
export const DEFAULT_TPM_TCTI = CONFIG_DEFAULTS.key.tpmTcti;
/** Where the recipe puts the TPM2OPENSSL_TCTI assignment into the drop-in template. */
export const TCTI_SLOT = '@TPM2OPENSSL_TCTI@';

const HEADER = (what: string) =>
  `# Installed by fleetprovisioning-config for FLEETPROV_KEY_STORE = "tpm" with Greengrass.\n${what}`;

/** The OpenSSL configuration: providers default and tpm2, both activated, as TPM_SUPPORT.md has them. */
export function tpmOpensslConf(): string {
  return `${HEADER(`# Greengrass nucleus lite loads the device key from the TPM (system.privateKeyPath
# "handle:0x8100000N") with OSSL_STORE, which resolves a handle: URI only with the tpm2 provider
# (tpm2-openssl) activated: providers as aws-greengrass-lite docs/TPM_SUPPORT.md, "Configure
# OpenSSL TPM2 Provider", has them. No module path: OpenSSL loads tpm2.so from its modules
# directory, where tpm2-openssl installs it. Its services read this file through OPENSSL_CONF
# (the ${TPM_DROP_IN_NAME} drop-ins); /etc/ssl/openssl.cnf is left as it is.
# tpm2-openssl 1.2.0 or later signs with the TPM key through this plain configuration.`)}
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
default = default_sect
tpm2 = tpm2_sect

[default_sect]
activate = 1

[tpm2_sect]
identity = tpm2
activate = 1
`;
}

/** The drop-in with TCTI_SLOT where the TPM2OPENSSL_TCTI assignment goes. */
export function tpmDropInTemplate(): string {
  return `${HEADER(`# This service loads the device key from the TPM (system.privateKeyPath "handle:0x8100000N"):
# OpenSSL needs the tpm2 provider activated (OPENSSL_CONF), the provider reaches the TPM by the
# TCTI fp-agent uses (FLEETPROV_TPM_TCTI), and the service's user needs the ${TPM_GROUP} group, which
# owns /dev/tpmrm0 (aws-greengrass-lite docs/TPM_SUPPORT.md, "Configure OpenSSL TPM2 Provider"
# and "Configure User Permissions"). SupplementaryGroups gives the group to this service alone,
# without changing the user database.`)}
[Service]
Environment=OPENSSL_CONF=${TPM_OPENSSL_CONF}
Environment=${TCTI_SLOT}
SupplementaryGroups=${TPM_GROUP}
`;
}

/**
 * One word of a systemd Environment= line: specifiers (`%`) doubled, and double-quoted with C
 * escapes when it holds anything but plain characters (systemd.exec(5), "Environment=";
 * systemd.unit(5), "Specifiers"). The recipe's Python does the same (fleetprov_systemd_word).
 */
export function systemdWord(word: string): string {
  const text = word.replaceAll('%', '%%');
  return /^[A-Za-z0-9_=:/.,+@%-]*$/.test(text) ? text : `"${text.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** The TCTI the drop-in gives tpm2-openssl: FLEETPROV_TPM_TCTI as the recipe reads it, or the default. */
export const effectiveTcti = (variable: string | undefined): string => (variable ?? '').trim() || DEFAULT_TPM_TCTI;

/** The drop-in for FLEETPROV_TPM_TCTI = `tctiVariable` (unset or empty: the default TCTI). */
export function tpmDropIn(tctiVariable?: string): string {
  return tpmDropInTemplate().replace(TCTI_SLOT, systemdWord(`TPM2OPENSSL_TCTI=${effectiveTcti(tctiVariable)}`));
}
