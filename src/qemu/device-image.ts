// The device's image overlay: exactly what the layer's recipes install (installManifest(), the
// rendered layer's units, the config recipe's config.yaml and, with a TPM key, Greengrass lite's
// OpenSSL configuration and drop-ins, the claim files) plus the little a
// Greengrass lite image would have that the test needs: its target, config.d and, in place of
// iotcored, a stand-in that uses the identity as iotcored does (greengrass-standin.ts).
import { join } from 'node:path';
import { installManifest } from '../layer/install-manifest.ts';
import { renderProjectLayer } from '../layer/render.ts';
import { packageRoot } from '../shared/package-root.ts';
import { GUEST_HOST_ADDR } from './boot.ts';
import { recipeConfigYaml, type RecipeValues } from '../layer/config-yaml.ts';
import type { OverlayEntry } from './image.ts';
import { greengrassStandinOverlay } from './greengrass-standin.ts';
import { overlayFromManifest } from './overlay-from-manifest.ts';
import { commandChannelOverlay } from './oeqa-case.ts';

export interface DeviceSetup {
  /** The emulator's port, forwarded as GUEST_HOST_ADDR:<port> into the guest. */
  port: number;
  region: string;
  templateName: string;
  clientIdPrefix: string;
  claimDir: string;
  /** dist/fp-agent by default (FLEETPROV_AGENT_DIR's bundle). */
  agentBundle?: string;
  /** FLEETPROV_* values over the defaults below (the proxy scenario's endpoint, port and proxy). */
  values?: RecipeValues;
}

/** dist/fp-agent, or FP_QEMU_AGENT (to try an agent build without replacing dist/). */
export const agentBundlePath = (): string => process.env.FP_QEMU_AGENT || join(packageRoot(), 'dist', 'fp-agent');

/** The FLEETPROV_* values `init --local` would write, pointed at the host through slirp. */
export function deviceRecipeValues(s: DeviceSetup): RecipeValues {
  return {
    FLEETPROV_IOT_DATA_ENDPOINT: GUEST_HOST_ADDR,
    FLEETPROV_PORT: String(s.port),
    FLEETPROV_AWS_REGION: s.region,
    FLEETPROV_TEMPLATE_NAME: s.templateName,
    FLEETPROV_TEMPLATE_PARAMS: '{"DeviceId": "${deviceId}"}',
    FLEETPROV_CLIENT_ID_PREFIX: s.clientIdPrefix,
    FLEETPROV_DEVICE_ID_SOURCE: 'mac',
    FLEETPROV_GREENGRASS: '1',
    ...s.values,
  };
}

/** config.yaml as the config recipe writes it from those values. */
export const deviceConfigYaml = (s: DeviceSetup): string => recipeConfigYaml(deviceRecipeValues(s));

// slirp with restrict=on hands out no router in its DHCP offer, so the guest would have no default
// route, which every real device on a network has; the agent's MAC source looks for the NIC that
// holds it (and otherwise waits 30 s before taking the first NIC). slirp's own address as the
// gateway: restrict=on still drops everything that is not the forwarded port.
const DEFAULT_ROUTE = `[Route]
Gateway=10.0.2.254
`;

export async function deviceOverlay(s: DeviceSetup): Promise<OverlayEntry[]> {
  const layer = await renderProjectLayer();
  const values = deviceRecipeValues(s);
  const config = recipeConfigYaml(values);
  const bundle = s.agentBundle ?? agentBundlePath();
  const recipes = overlayFromManifest(installManifest(values), (source) => {
    switch (source.kind) {
      case 'bundle':
        return { sourcePath: bundle };
      case 'config':
        return { contents: config };
      case 'claim':
        return { sourcePath: join(s.claimDir, source.file) };
      case 'generated':
        // With key.store tpm and Greengrass: the OpenSSL configuration and drop-ins of Greengrass
        // lite's services, which the iotcored stand-in's unit (ggl.core.iotcored.service) gets too.
        return { contents: source.contents };
      case 'layer': {
        const bytes = layer.get(source.path);
        if (!bytes) throw new Error(`the rendered layer has no ${source.path}`);
        return { contents: bytes };
      }
    }
  });
  return [
    ...recipes,
    ...greengrassStandinOverlay(),
    { type: 'dir', path: '/etc/systemd/network/20-eth0.network.d', mode: 0o755 },
    { path: '/etc/systemd/network/20-eth0.network.d/default-route.conf', mode: 0o644, contents: DEFAULT_ROUTE },
    // Inert unless a boot asks for it (the reboot scenario runs the layer's testimage case).
    ...commandChannelOverlay(),
  ];
}
