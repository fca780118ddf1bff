// The proxy carried on to Greengrass nucleus lite, in the form it reads (aws-greengrass-lite
// v2.1.0+, "Added HTTP proxy support ... networkProxy"): services.aws.greengrass.NucleusLite.
// configuration.networkProxy.proxy.url (modules/iotcored/src/entry.c set_proxy_args, and
// modules/ggl-proxy-environment for tesd and ggdeploymentd, which pass it to curl) and the
// no-proxy list, which ggl-proxy-environment reads as `noProxyAddresses` (the key Greengrass
// documents: "Configure the AWS IoT Greengrass Core software", networkProxy object) and iotcored
// as `noproxy`: both are written. Greengrass lite reads no username/password keys; curl takes
// the credentials from the URL's userinfo, so they go there (iotcored ignores them: its CONNECT
// sends none, "TODO: parse userinfo" in modules/iotcored/src/tls.c).
import type { AgentConfig } from '../../shared/config.ts';
import { parseProxyUrl, proxyUrlWithCredentials, type ProxyUrl } from '../../shared/proxy-url.ts';

type Env = Record<string, string | undefined>;

export interface CarriedProxy {
  url?: ProxyUrl;
  noProxy?: string;
}

/** The proxy the agent goes by (config first, then the environment), whatever no_proxy says of the endpoint. */
export function carriedProxy(config: Pick<AgentConfig, 'proxy'>, env: Env = process.env): CarriedProxy {
  const envUrl = env.https_proxy?.trim() || env.HTTPS_PROXY?.trim();
  const url = config.proxy?.url ?? (envUrl ? parseProxyUrl(envUrl) : undefined);
  const noProxy = config.proxy?.noProxy ?? (env.no_proxy?.trim() || env.NO_PROXY?.trim() || undefined);
  return { ...(url ? { url } : {}), ...(noProxy ? { noProxy } : {}) };
}

/** The NucleusLite `networkProxy` value, or undefined without a proxy. */
export function greengrassNetworkProxy(proxy: CarriedProxy): Record<string, unknown> | undefined {
  if (!proxy.url) return undefined;
  return {
    ...(proxy.noProxy ? { noProxyAddresses: proxy.noProxy, noproxy: proxy.noProxy } : {}),
    proxy: { url: proxyUrlWithCredentials(proxy.url) },
  };
}

/** Whether the drop-in holds a proxy password: then only root and the Greengrass group may read it. */
export const carriesCredentials = (proxy: CarriedProxy): boolean => proxy.url?.username !== undefined;
