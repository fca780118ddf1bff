// What a Greengrass lite image has and the QEMU test needs, without Greengrass itself: its
// greengrass-lite.target, and in place of its MQTT daemon iotcored a unit of the same name that
// does what iotcored does with the identity the agent hands over. It runs as Greengrass's user,
// reads thing name, certificate, key, root CA and endpoint from the config.d drop-in, dials the
// endpoint on 8883, subscribes to the deployment notifications and publishes a health message, all
// on one MQTT 3.1.1 connection made by a client nobody here wrote: Debian's mosquitto_rr
// (mosquitto-clients). The emulator's log then shows what AWS IoT would have seen.
import { GREENGRASS_DROP_IN, GREENGRASS_GROUP, GREENGRASS_TARGET } from '../shared/device-paths.ts';
import { enableUnit, type OverlayEntry } from './image.ts';
import { GREENGRASS_USER } from './rootfs.ts';

/** The name of Greengrass lite's MQTT daemon unit (meta-aws), which the stand-in takes. */
export const IOTCORED_UNIT = 'ggl.core.iotcored.service';
const SCRIPT = '/usr/local/libexec/fp-qemu-iotcored';

/**
 * iotcored always dials 8883: the drop-in has no port (aws-greengrass-lite,
 * modules/iotcored/src/tls.c: `BIO_set_conn_port(bio, "8883")`). The harness forwards it.
 */
export const GREENGRASS_MQTT_PORT = 8883;

/** The topics Greengrass uses on the thing's connection (its deployment service and fleet status service). */
export const greengrassTopics = (thing: string) => ({
  /** Deployment notifications of the Greengrass jobs namespace ("IoT jobs" deployments). */
  deploymentNotify: `$aws/things/${thing}/jobs/notify-next-namespace-aws-gg-deployment`,
  /** Fleet status service: device and component health. */
  health: `$aws/things/${thing}/greengrassv2/health/json`,
});

/** Every line the stand-in's script writes. */
export const STANDIN_LINE = /iotcored-standin: /;
/** Its line for a TPM key it loaded as iotcored would: the key URI, the user, the certificate. */
export const STANDIN_TPM_KEY = /iotcored-standin: loaded (handle:0x[0-9a-f]{8}) through OpenSSL's store as (\S+): the key of (\S+)/;
/** Its line once it has read the identity and starts the client. */
export const STANDIN_CONNECTING = /iotcored-standin: connecting to (\S+):(\d+) as (\S+) \(user (\S+)\)/;

/** A topic as a double-quoted shell word with the thing name from `$thing`. */
const shellTopic = (topic: string) => `"${topic.replace('$aws', '\\$aws')}"`;

// POSIX sh (the guest's dash). The drop-in is the agent's YAML: one `key: value` a line, values
// plain or quoted. Every missing or unreadable piece is one line naming it, and a non-zero exit.
const topics = greengrassTopics('${thing}');

/**
 * The stand-in's script. `dropIn` and `port` differ from the device's only in the host-side unit
 * test, which cannot own port 8883 on a shared machine.
 */
export const standinScript = ({ dropIn = GREENGRASS_DROP_IN, port = GREENGRASS_MQTT_PORT } = {}): string => `#!/bin/sh
# iotcored stand-in of the fp-yocto QEMU test (never in a Yocto image).
set -u
dropin=${dropIn}
say() { echo "iotcored-standin: $*" >&2; }
value() {
  v=$(sed -n "s/^ *$1: *//p" "$dropin" | head -n 1)
  v=\${v#[\\"\\']}; v=\${v%[\\"\\']}
  if [ -z "$v" ]; then say "$dropin has no $1"; return 1; fi
  printf '%s' "$v"
}
if [ ! -r "$dropin" ]; then say "cannot read $dropin as $(id -un)"; exit 1; fi
thing=$(value thingName) || exit 1
cert=$(value certificateFilePath) || exit 1
key=$(value privateKeyPath) || exit 1
ca=$(value rootCaPath) || exit 1
endpoint=$(value iotDataEndpoint) || exit 1
for f in "$cert" "$ca"; do
  if [ ! -r "$f" ]; then say "cannot read $f as $(id -un)"; exit 1; fi
done
case "$key" in
handle:*)
  # A key in the TPM. iotcored loads privateKeyPath with OSSL_STORE_open in OpenSSL's default
  # library context (aws-greengrass-lite modules/iotcored/src/tls.c), so a handle: URI resolves
  # only through the environment its unit gives it: the layer's drop-in (OPENSSL_CONF activating
  # the tpm2 provider, TPM2OPENSSL_TCTI, the tss group). openssl pkey loads it the same way.
  # mosquitto_rr takes key files only, and Debian 12's tpm2-openssl 1.1.1 cannot sign with a TPM
  # key through a plain provider activation (1.2.0 fixed its key export): no MQTT session here.
  if ! pub=$(openssl pkey -in "$key" -pubout 2>&1); then
    say "cannot load $key through OpenSSL's store as $(id -un) (OPENSSL_CONF \${OPENSSL_CONF:-unset}): $(printf '%s' "$pub" | head -n 1)"
    exit 1
  fi
  if [ "$pub" != "$(openssl x509 -in "$cert" -noout -pubkey)" ]; then say "$key is not the key of $cert"; exit 1; fi
  say "loaded $key through OpenSSL's store as $(id -un): the key of $cert"
  exec sleep infinity
  ;;
esac
if [ ! -r "$key" ]; then say "cannot read $key as $(id -un)"; exit 1; fi
health=$(printf '{"ggcVersion":"stand-in","platform":"linux","architecture":"amd64","runtime":"NucleusLite","thing":"%s","sequenceNumber":1,"timestamp":%s000,"messageType":"COMPLETE","trigger":"NUCLEUS_LAUNCH","overallDeviceStatus":"HEALTHY","components":[]}' "$thing" "$(date +%s)")
say "connecting to $endpoint:${port} as $thing (user $(id -un))"
# One connection, as iotcored keeps one: SUBSCRIBE to the deployment notifications, once granted
# PUBLISH the health message (QoS 1), then wait for a notification (none comes).
exec mosquitto_rr -V mqttv311 -h "$endpoint" -p ${port} --cafile "$ca" --cert "$cert" --key "$key" \\
  -i "$thing" -k 30 -q 1 -e ${shellTopic(topics.deploymentNotify)} -t ${shellTopic(topics.health)} -m "$health"
`;

// Greengrass lite's own target: enabled like the real one, so the boot-time ordering between it
// and the provisioning unit (Before=greengrass-lite.target) is what a device has.
const TARGET_UNIT = `[Unit]
Description=Greengrass lite (stand-in for the QEMU test)

[Install]
WantedBy=multi-user.target
`;

// Modelled on iotcored's unit (aws-greengrass-lite modules/iotcored/unit/ggl.core.iotcored.service.in:
// PartOf and WantedBy the target, Restart=always, RestartSec=1, the start limit, User/Group), so
// the agent's `systemctl restart greengrass-lite.target` restarts it as it restarts iotcored. One
// difference: iotcored waits for the network inside (it retries with backoff), mosquitto_rr does
// not, so this one is ordered after network-online.target.
const IOTCORED_STANDIN_UNIT = `[Unit]
Description=Greengrass lite iotcored stand-in (QEMU test): mosquitto_rr with the drop-in's identity
PartOf=${GREENGRASS_TARGET}
StartLimitIntervalSec=20
StartLimitBurst=10
Wants=network-online.target
After=network-online.target time-sync.target

[Service]
Type=exec
ExecStart=${SCRIPT}
Restart=always
RestartSec=1
User=${GREENGRASS_USER}
Group=${GREENGRASS_GROUP}

[Install]
WantedBy=${GREENGRASS_TARGET}
`;

/** The target, the iotcored stand-in and config.d, enabled as a Greengrass lite image has them. */
export function greengrassStandinOverlay(): OverlayEntry[] {
  const configDir = GREENGRASS_DROP_IN.slice(0, GREENGRASS_DROP_IN.lastIndexOf('/'));
  return [
    { type: 'dir', path: '/etc/greengrass', mode: 0o755 },
    { type: 'dir', path: configDir, mode: 0o755 },
    { path: `/usr/lib/systemd/system/${GREENGRASS_TARGET}`, mode: 0o644, contents: TARGET_UNIT },
    enableUnit(GREENGRASS_TARGET),
    { type: 'dir', path: '/usr/local/libexec', mode: 0o755 },
    { path: SCRIPT, mode: 0o755, contents: standinScript() },
    { path: `/usr/lib/systemd/system/${IOTCORED_UNIT}`, mode: 0o644, contents: IOTCORED_STANDIN_UNIT },
    enableUnit(IOTCORED_UNIT, GREENGRASS_TARGET),
  ];
}
