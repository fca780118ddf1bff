// Runs the config recipe's Python (fleetprov_config of the layer's class, as rendered) with a stand-in for
// bitbake's datastore, parses what it writes with the agent's parser, and holds its TypeScript
// twin (src/layer/config-yaml.ts, used for QEMU images) to the same bytes and messages.
import { describe, expect, it } from 'vitest';
import { recipeConfig } from '../../src/layer/config-yaml.ts';
import { renderProjectLayer } from '../../src/layer/render.ts';
import { parseAgentConfig } from '../../src/shared/config.ts';
import { CLAIM_DIR, GREENGRASS_DROP_IN, OUTPUT_DIR } from '../../src/shared/device-paths.ts';
import { runClass } from './bbclass.ts';

describe('the config recipe', async () => {
  const layer = await renderProjectLayer();

  // fleetprov_config of the class (as rendered), with its own defaults overridden by these values.
  const run = (values: Record<string, string>): { text: string | null; problem: string | null } => {
    const [text, problem] = runClass<[string | null, string | null]>(layer, 'fleetprov_config', values).result!;
    return { text, problem };
  };

  const required = { FLEETPROV_IOT_DATA_ENDPOINT: 'abc-ats.iot.eu-west-1.amazonaws.com', FLEETPROV_TEMPLATE_NAME: 'fleet_tpl-1' };

  it('writes a config.yaml the agent accepts, from the required variables alone', () => {
    const { text, problem } = run(required);
    expect(problem).toBeNull();
    const config = parseAgentConfig(text!, 'config.yaml');
    expect(config).toMatchObject({
      iotDataEndpoint: required.FLEETPROV_IOT_DATA_ENDPOINT,
      templateName: 'fleet_tpl-1',
      port: 8883,
      templateParams: {},
      claimKeyPath: `${CLAIM_DIR}/claim.key.pem`,
      outputDir: OUTPUT_DIR,
      deviceId: { source: 'mac' },
      greengrass: { enabled: false, configDropIn: GREENGRASS_DROP_IN, group: 'ggcore' },
    });
  });

  it('carries every variable, with quotes, spaces, & and ${ intact in the template parameters', () => {
    const params = { DeviceId: '${deviceId}', Note: 'a "quoted" & <spaced> ${PN} \\ value', 'odd:key': 'x' };
    const { text, problem } = run({
      ...required,
      FLEETPROV_IOT_CRED_ENDPOINT: 'abc.credentials.iot.eu-west-1.amazonaws.com',
      FLEETPROV_PORT: '443',
      FLEETPROV_AWS_REGION: 'eu-west-1',
      FLEETPROV_ROLE_ALIAS: 'my role alias',
      FLEETPROV_TEMPLATE_PARAMS: JSON.stringify(params),
      FLEETPROV_CLIENT_ID_PREFIX: 'fp-',
      FLEETPROV_DEVICE_ID_SOURCE: 'machine-id',
      FLEETPROV_DEVICE_ID_INTERFACE: 'wlan0',
      FLEETPROV_DEVICE_ID_FORMAT: 'colon',
      FLEETPROV_GREENGRASS: '1',
      FLEETPROV_GREENGRASS_GROUP: 'gg_users-2',
      FLEETPROV_KEY_STORE: 'tpm',
      FLEETPROV_TPM_HANDLE: '0x81000010',
      FLEETPROV_TPM_TCTI: 'tabrmd:bus_type=system',
    });
    expect(problem).toBeNull();
    const config = parseAgentConfig(text!, 'config.yaml');
    expect(config).toMatchObject({
      iotCredEndpoint: 'abc.credentials.iot.eu-west-1.amazonaws.com',
      port: 443,
      awsRegion: 'eu-west-1',
      iotRoleAlias: 'my role alias',
      templateParams: params,
      clientIdPrefix: 'fp-',
      deviceId: { source: 'machine-id', interface: 'wlan0', format: 'colon' },
      greengrass: { enabled: true, group: 'gg_users-2' },
      key: { store: 'tpm', tpmHandle: 0x81000010, tpmTcti: 'tabrmd:bus_type=system' },
    });
  });

  it('takes the id from a file when FLEETPROV_DEVICE_ID_SOURCE is file and the path is given', () => {
    const { text, problem } = run({ ...required, FLEETPROV_DEVICE_ID_SOURCE: 'file', FLEETPROV_DEVICE_ID_PATH: '/factory/serial' });
    expect(problem).toBeNull();
    expect(parseAgentConfig(text!, 'config.yaml').deviceId).toEqual({ source: 'file', path: '/factory/serial', format: 'plain' });
  });

  it('writes handoff in place of greengrass.enabled, and the proxy block, as the agent reads them', () => {
    const { text, problem } = run({
      ...required,
      FLEETPROV_HANDOFF: 'device-client',
      FLEETPROV_PROXY_URL: 'http://dev%40ice:p%3Ass@proxy.example.com:3128',
      FLEETPROV_PROXY_NO_PROXY: 'localhost, .internal',
    });
    expect(problem).toBeNull();
    expect(text).not.toMatch(/enabled/);
    const config = parseAgentConfig(text!, 'config.yaml');
    expect(config.handoff).toBe('device-client');
    expect(config.proxy).toEqual({ url: { host: 'proxy.example.com', port: 3128, username: 'dev@ice', password: 'p:ss' }, noProxy: 'localhost, .internal' });
    expect(parseAgentConfig(run({ ...required, FLEETPROV_HANDOFF: 'greengrass' }).text!, 'config.yaml').greengrass.enabled).toBe(true);
    expect(parseAgentConfig(run({ ...required, FLEETPROV_GREENGRASS: '1', FLEETPROV_HANDOFF: 'greengrass' }).text!, 'config.yaml').handoff).toBe('greengrass');
  });

  it.each([
    [{ FLEETPROV_HANDOFF: 'device-client', FLEETPROV_GREENGRASS: '1' }, /^FLEETPROV_GREENGRASS: expected 0 with FLEETPROV_HANDOFF = "device-client" \(FLEETPROV_HANDOFF replaces it\)$/],
    [{ FLEETPROV_HANDOFF: 'device-client', FLEETPROV_KEY_STORE: 'tpm' }, /^FLEETPROV_HANDOFF: expected greengrass or none with FLEETPROV_KEY_STORE = "tpm" \(the AWS IoT Device Client reads its key from a file\)$/],
    [{ FLEETPROV_HANDOFF: 'iotdc' }, /^FLEETPROV_HANDOFF: expected one of greengrass, device-client, none, got 'iotdc'$/],
    [{ FLEETPROV_PROXY_URL: 'https://u:secret@proxy:3128' }, /^FLEETPROV_PROXY_URL: expected an http:\/\/ proxy URL with a port, http:\/\/\[user:password@\]host:port \(https:\/\/ proxies are not supported\)$/],
    [{ FLEETPROV_PROXY_URL: 'http://u:secret@proxy' }, /^FLEETPROV_PROXY_URL: expected an http:\/\/ proxy URL with a port/],
    [{ FLEETPROV_PROXY_URL: 'http://proxy:99999' }, /^FLEETPROV_PROXY_URL: expected an http:\/\/ proxy URL with a port/],
    [{ FLEETPROV_IOT_DATA_ENDPOINT: '' }, /^FLEETPROV_IOT_DATA_ENDPOINT is not set/],
    [{ FLEETPROV_TEMPLATE_NAME: ' ' }, /^FLEETPROV_TEMPLATE_NAME is not set/],
    [{ FLEETPROV_PORT: '88a' }, /^FLEETPROV_PORT: expected a port number/],
    [{ FLEETPROV_PORT: '70000' }, /^FLEETPROV_PORT: expected a port number/],
    [{ FLEETPROV_GREENGRASS: 'yes' }, /^FLEETPROV_GREENGRASS: expected 0 or 1/],
    [{ FLEETPROV_DEVICE_ID_SOURCE: 'serial' }, /^FLEETPROV_DEVICE_ID_SOURCE: expected one of mac, /],
    [{ FLEETPROV_TEMPLATE_PARAMS: '{"a": 1}' }, /^FLEETPROV_TEMPLATE_PARAMS: expected a JSON object of strings/],
    [{ FLEETPROV_TEMPLATE_PARAMS: 'DeviceId=x' }, /^FLEETPROV_TEMPLATE_PARAMS: expected a JSON object/],
    [{ FLEETPROV_DEVICE_ID_SOURCE: 'file' }, /^FLEETPROV_DEVICE_ID_PATH is not set: FLEETPROV_DEVICE_ID_SOURCE = "file" needs it$/],
    [{ FLEETPROV_DEVICE_ID_SOURCE: 'file', FLEETPROV_DEVICE_ID_PATH: 'serial' }, /^FLEETPROV_DEVICE_ID_PATH: expected an absolute path on the device, got 'serial'$/],
    [{ FLEETPROV_DEVICE_ID_INTERFACE: 'eth 0' }, /^FLEETPROV_DEVICE_ID_INTERFACE: expected a network interface name such as eth0, got 'eth 0'$/],
    [{ FLEETPROV_DEVICE_ID_INTERFACE: 'a-very-long-interface' }, /^FLEETPROV_DEVICE_ID_INTERFACE: expected a network interface name/],
    [{ FLEETPROV_GREENGRASS_GROUP: 'GG core' }, /^FLEETPROV_GREENGRASS_GROUP: expected a group name such as ggcore \(a-z 0-9 _ -, at most 32\), got 'GG core'$/],
    [{ FLEETPROV_GREENGRASS_GROUP: 'g'.repeat(33) }, /^FLEETPROV_GREENGRASS_GROUP: expected a group name/],
    [{ FLEETPROV_KEY_STORE: 'hsm' }, /^FLEETPROV_KEY_STORE: expected one of file, tpm, got 'hsm'$/],
    [{ FLEETPROV_TPM_HANDLE: '81000002' }, /^FLEETPROV_TPM_HANDLE: expected a persistent TPM handle from 0x81000000 to 0x817ffffe, such as 0x81000002, got '81000002'$/],
    [{ FLEETPROV_TPM_HANDLE: '0x817fffff' }, /^FLEETPROV_TPM_HANDLE: expected a persistent TPM handle/],
    [{ FLEETPROV_TPM_TCTI: 'device: /dev/tpmrm0' }, /^FLEETPROV_TPM_TCTI: expected a TCTI such as device:\/dev\/tpmrm0 or tabrmd \(name\[:options\], no spaces\), got 'device: \/dev\/tpmrm0'$/],
    [{ FLEETPROV_DEVICE_ID_FORMAT: 'upper' }, /^FLEETPROV_DEVICE_ID_FORMAT: expected one of plain, colon, dash, underscore, raw, got 'upper'$/],
  ])('skips the recipe naming the variable for %j', (values, message) => {
    const { text, problem } = run({ ...required, ...values });
    expect(text).toBeNull();
    expect(problem).toMatch(message);
  });

  // The twin must agree on every outcome: the same bytes, or the same message.
  it.each<Record<string, string>>([
    {},
    { FLEETPROV_TEMPLATE_PARAMS: JSON.stringify({ DeviceId: '${deviceId}', 'Ünï': 'caf\u00e9 \u{1f680}', q: `it's "x"` }) },
    { FLEETPROV_DEVICE_ID_SOURCE: 'file', FLEETPROV_DEVICE_ID_PATH: '/factory/serial', FLEETPROV_DEVICE_ID_FORMAT: 'raw' },
    { FLEETPROV_DEVICE_ID_INTERFACE: 'eth0', FLEETPROV_PORT: ' 443 ', FLEETPROV_GREENGRASS: '1', FLEETPROV_AWS_REGION: 'eu-west-1' },
    { FLEETPROV_DEVICE_ID_SOURCE: 'file' },
    { FLEETPROV_DEVICE_ID_PATH: "it's relative" },
    { FLEETPROV_DEVICE_ID_INTERFACE: 'tab\there' },
    { FLEETPROV_GREENGRASS: '1', FLEETPROV_GREENGRASS_GROUP: 'gg_users-2' },
    { FLEETPROV_GREENGRASS_GROUP: '-x' },
    { FLEETPROV_PORT: '0' },
    { FLEETPROV_TEMPLATE_PARAMS: '[]' },
    { FLEETPROV_IOT_DATA_ENDPOINT: '' },
    { FLEETPROV_KEY_STORE: 'tpm', FLEETPROV_TPM_HANDLE: '0x8100000A' },
    { FLEETPROV_KEY_STORE: 'tpm', FLEETPROV_TPM_HANDLE: '0x817fffff' },
    { FLEETPROV_KEY_STORE: 'tpm', FLEETPROV_TPM_TCTI: 'Tabrmd' },
    { FLEETPROV_KEY_STORE: 'TPM' },
    { FLEETPROV_HANDOFF: 'device-client' },
    { FLEETPROV_HANDOFF: 'none', FLEETPROV_GREENGRASS: '1' },
    { FLEETPROV_HANDOFF: 'greengrass', FLEETPROV_GREENGRASS: '1', FLEETPROV_GREENGRASS_GROUP: 'gg' },
    { FLEETPROV_HANDOFF: 'x' },
    { FLEETPROV_HANDOFF: 'device-client', FLEETPROV_KEY_STORE: 'tpm' },
    { FLEETPROV_PROXY_URL: 'http://u:p%20w@[fd00::1]:8080/', FLEETPROV_PROXY_NO_PROXY: '*' },
    { FLEETPROV_PROXY_URL: 'http://u:secret@proxy' },
    { FLEETPROV_PROXY_URL: 'http://proxy:0' },
  ])('has a TypeScript twin that agrees for %j', (values) => {
    expect(recipeConfig({ ...required, ...values })).toEqual(run({ ...required, ...values }));
  });
});
