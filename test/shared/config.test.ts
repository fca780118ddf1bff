import { describe, expect, it } from 'vitest';
import { CONFIG_DEFAULTS, expandTemplateParams, parseAgentConfig, validateAgentConfig } from '../../src/shared/config.ts';
import { ConfigError } from '../../src/shared/errors.ts';

const FILE = '/etc/fleetprovisioning/config.yaml';
const minimal = 'iotDataEndpoint: abc-ats.iot.eu-west-1.amazonaws.com\ntemplateName: fleet\n';

/** The message parseAgentConfig throws for a document, or undefined when it parses. */
function errorOf(text: string): string | undefined {
  try {
    parseAgentConfig(text, FILE);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
}

describe('agent config', () => {
  it('fills every default from two required keys', () => {
    const config = parseAgentConfig(minimal, FILE);
    expect(config).toEqual({
      iotDataEndpoint: 'abc-ats.iot.eu-west-1.amazonaws.com',
      iotCredEndpoint: undefined,
      port: 8883,
      awsRegion: undefined,
      iotRoleAlias: undefined,
      templateName: 'fleet',
      templateParams: {},
      clientIdPrefix: 'fleetprov-',
      claimCertPath: '/etc/fleetprovisioning/claim/claim.cert.pem',
      claimKeyPath: '/etc/fleetprovisioning/claim/claim.key.pem',
      rootCaPath: '/etc/fleetprovisioning/claim/root-ca.pem',
      deviceId: { source: 'mac', interface: undefined, path: undefined, format: 'plain' },
      key: {
        algorithm: 'ec-p256',
        devicePrivateKeyPath: undefined,
        csrPath: undefined,
        createKeysAndCertificate: false,
        store: 'file',
        tpmHandle: 0x81000002,
        tpmTcti: 'device:/dev/tpmrm0',
      },
      outputDir: '/var/lib/fleetprovisioning',
      handoff: 'none',
      greengrass: CONFIG_DEFAULTS.greengrass,
      deviceClient: { configFile: '/etc/.aws-iot-device-client/aws-iot-device-client.conf', unit: 'aws-iot-device-client.service' },
      retry: CONFIG_DEFAULTS.retry,
      removeClaimKeyAfterSuccess: false,
    });
  });

  it("accepts Greengrass lite's fleet_provisioning block, its key names and templateParams as JSON text", () => {
    const config = parseAgentConfig(
      [
        'system:',
        '  rootCaPath: /greengrass/AmazonRootCA1.pem',
        'services:',
        '  aws.greengrass.fleet_provisioning:',
        '    configuration:',
        '      iotDataEndpoint: abc-ats.iot.eu-west-1.amazonaws.com',
        '      templateName: fleet',
        '      claimCertPath: /c/claim.pem',
        '      claimKeyPath: /c/claim.key',
        '      mqttPort: 443',
        '      csrPath: /c/device.csr',
        '      key: { devicePrivateKeyPath: /c/device.key }',
        `      templateParams: '{"DeviceId": "\${deviceId}", "Batch": 7}'`,
      ].join('\n'),
      FILE,
    );
    expect(config.rootCaPath).toBe('/greengrass/AmazonRootCA1.pem');
    expect(config.port).toBe(443);
    expect(config.key.csrPath).toBe('/c/device.csr');
    expect(config.key.devicePrivateKeyPath).toBe('/c/device.key');
    expect(config.templateParams).toEqual({ DeviceId: '${deviceId}', Batch: '7' });
  });

  it.each([
    ['port: 99999', 'port: expected a whole number from 1 to 65535'],
    ['awsRegion: Europe', 'awsRegion: expected an AWS region'],
    ['claimKeyPath: relative/key.pem', 'claimKeyPath: expected an absolute path'],
    ['deviceId: { source: serial }', 'deviceId.source: expected one of mac, machine-id, device-tree-serial, dmi-serial, file'],
    ['deviceId: { source: file }', 'deviceId.path: expected an absolute path when deviceId.source is "file"'],
    ['key: { algorithm: ed25519 }', 'key.algorithm: expected one of ec-p256, rsa-2048'],
    ['key: { csrPath: /x.csr }', 'key.devicePrivateKeyPath: expected the path of the key that signed key.csrPath'],
    ['key: { store: hsm }', 'key.store: expected one of file, tpm'],
    ['key: { tpmHandle: "0x81800000" }', 'key.tpmHandle: expected a persistent TPM handle from 0x81000000 to 0x817ffffe'],
    ['key: { tpmHandle: 0x817fffff }', 'key.tpmHandle: expected a persistent TPM handle from 0x81000000 to 0x817ffffe'],
    ['key: { tpmHandle: "handle:0x81000002" }', 'key.tpmHandle: expected a persistent TPM handle'],
    ['key: { tpmTcti: "device: /dev/tpm0" }', 'key.tpmTcti: expected a TCTI such as device:/dev/tpmrm0'],
    ['key: { store: tpm, devicePrivateKeyPath: /k.pem }', 'key.devicePrivateKeyPath: expected unset when key.store is "tpm"'],
    ['key: { store: tpm, createKeysAndCertificate: true }', 'key.createKeysAndCertificate: expected false when key.store is "tpm"'],
    ['key: { store: tpm, csrPath: /x.csr }', 'key.csrPath: expected unset when key.store is "tpm" (the CSR is made and signed in the TPM)'],
    ['handoff: device-client\nkey: { store: tpm }', 'handoff: expected greengrass or none when key.store is "tpm"'],
    ['greengrass: { enabled: "yes" }', 'greengrass.enabled: expected true or false'],
    ['greengrass: { restartTarget: greengrass }', 'greengrass.restartTarget: expected a systemd unit name'],
    ['greengrass: { group: "gg core" }', 'greengrass.group: expected a group name such as ggcore'],
    ['greengrass: { group: Root }', 'greengrass.group: expected a group name such as ggcore'],
    [`greengrass: { group: ${'g'.repeat(33)} }`, 'greengrass.group: expected a group name such as ggcore'],
    ['retry: { initialDelayMs: 5000, maxDelayMs: 10 }', 'retry.maxDelayMs: expected a value >= retry.initialDelayMs (5000)'],
    ['templateParams: "{not json"', 'templateParams: expected a mapping of names to strings, or that mapping as JSON text'],
    ['templateParams: { DeviceId: [1] }', 'templateParams.DeviceId: expected a string value'],
    ['tempalteParams: {}', 'tempalteParams: expected a known key: did you mean templateParams?'],
    ['greengrass: { enable: true }', 'greengrass.enable: expected a known key: did you mean greengrass.enabled?'],
  ])('rejects %s naming the field', (line, message) => {
    expect(errorOf(`${minimal}${line}\n`)).toContain(`${FILE}: ${message}`);
  });

  it.each([
    ['iotDataEndpoint: "https://x"\ntemplateName: fleet', 'iotDataEndpoint: expected a host name'],
    ['iotDataEndpoint: x.example\ntemplateName: "has space"', 'templateName: expected a provisioning template name'],
  ])('rejects a malformed required value: %s', (doc, message) => {
    expect(errorOf(`${doc}\n`)).toContain(`${FILE}: ${message}`);
  });

  it('keeps the device key in a file by default; key.store tpm takes a handle as text or number, and a TCTI', () => {
    expect(parseAgentConfig(minimal, FILE).key).toMatchObject({ store: 'file', tpmHandle: 0x81000002, tpmTcti: 'device:/dev/tpmrm0' });
    const tpm = parseAgentConfig(`${minimal}key:\n  store: tpm\n  tpmHandle: "0x81000010"\n  tpmTcti: swtpm:host=127.0.0.1,port=2321\n`, FILE);
    expect(tpm.key).toMatchObject({ store: 'tpm', tpmHandle: 0x81000010, tpmTcti: 'swtpm:host=127.0.0.1,port=2321' });
    expect(parseAgentConfig(`${minimal}key: { tpmHandle: 0x81000004 }\n`, FILE).key.tpmHandle).toBe(0x81000004);
  });

  it("takes Greengrass lite's keyPath \"handle:0x...\" as key.store tpm, and refuses a claim key in the TPM by name", () => {
    expect(parseAgentConfig(`${minimal}keyPath: "handle:0x81000001"\n`, FILE).key).toMatchObject({ store: 'tpm', tpmHandle: 0x81000001 });
    expect(errorOf(`${minimal}keyPath: "handle:0x91000001"\n`)).toBe(`${FILE}: key.tpmHandle: expected a persistent TPM handle from 0x81000000 to 0x817ffffe, such as 0x81000002`);
    expect(errorOf(`${minimal}keyPath: /var/lib/greengrass/priv_key\n`)).toBe(`${FILE}: keyPath: expected a TPM handle such as "handle:0x81000002" (fp-agent chooses the names of key files itself)`);
    expect(errorOf(`${minimal}claimKeyPath: "handle:0x81000000"\n`)).toMatch(/: claimKeyPath: expected the path of the claim key file \(a claim key in the TPM is not supported/);
  });

  it('lists the known keys when nothing is close to an unknown one', () => {
    expect(errorOf(`${minimal}colour: blue\n`)).toMatch(/colour: expected one of the known keys \(iotDataEndpoint, .*removeClaimKeyAfterSuccess, proxy\)$/);
  });

  it('names the line of a YAML syntax error and the missing required keys', () => {
    expect(errorOf('iotDataEndpoint: [unclosed\n')).toMatch(/^\/etc\/fleetprovisioning\/config.yaml: line \d+: expected valid YAML \(.+\)$/);
    expect(errorOf(`${minimal}templateName: again\n`)).toBe(`${FILE}: line 3: expected valid YAML (Map keys must be unique)`);
    expect(errorOf('templateName: fleet\n')).toBe(`${FILE}: iotDataEndpoint: expected a non-empty string`);
    expect(() => validateAgentConfig(['a list'], FILE)).toThrow(`${FILE}: (document): expected a mapping`);
  });

  it('takes the Greengrass group, ggcore by default (meta-aws runs Greengrass lite as ggcore:ggcore)', () => {
    expect(parseAgentConfig(minimal, FILE).greengrass.group).toBe('ggcore');
    expect(parseAgentConfig(`${minimal}greengrass: { group: gg_svc-2 }\n`, FILE).greengrass.group).toBe('gg_svc-2');
  });

  it('replaces ${deviceId} in every template parameter', () => {
    expect(expandTemplateParams({ DeviceId: '${deviceId}', Name: 'dev-${deviceId}-x', Fixed: 'y' }, 'a1b2')).toEqual({
      DeviceId: 'a1b2',
      Name: 'dev-a1b2-x',
      Fixed: 'y',
    });
  });
});

describe('handoff, and the old greengrass.enabled', () => {
  const base = { iotDataEndpoint: 'abc-ats.iot.eu-west-1.amazonaws.com', templateName: 't' };
  const handoffOf = (doc: Record<string, unknown>) => validateAgentConfig({ ...base, ...doc }, FILE).handoff;
  const errorOf = (doc: Record<string, unknown>) => {
    try {
      validateAgentConfig({ ...base, ...doc }, FILE);
      return 'no error';
    } catch (error) {
      return (error as Error).message;
    }
  };

  it('reads handoff, with greengrass.enabled as the old spelling of handoff: greengrass', () => {
    expect(handoffOf({})).toBe('none');
    expect(handoffOf({ greengrass: { enabled: true } })).toBe('greengrass');
    expect(handoffOf({ greengrass: { enabled: false } })).toBe('none');
    expect(handoffOf({ handoff: 'device-client' })).toBe('device-client');
    expect(handoffOf({ handoff: 'greengrass', greengrass: { enabled: true } })).toBe('greengrass');
    expect(handoffOf({ handoff: 'none', greengrass: { enabled: false } })).toBe('none');
    expect(validateAgentConfig({ ...base, handoff: 'greengrass' }, FILE).greengrass.enabled).toBe(true);
    expect(validateAgentConfig({ ...base, handoff: 'device-client' }, FILE).greengrass.enabled).toBe(false);
  });

  it.each([
    [{ handoff: 'device-client', greengrass: { enabled: true } }, 'greengrass.enabled: expected false or unset with handoff: device-client (handoff replaces it)'],
    [{ handoff: 'greengrass', greengrass: { enabled: false } }, 'greengrass.enabled: expected true or unset with handoff: greengrass (handoff replaces it)'],
    [{ handoff: 'device_client' }, 'handoff: expected one of greengrass, device-client, none'],
    [{ deviceClient: { configFile: 'relative.conf' } }, 'deviceClient.configFile: expected an absolute path'],
    [{ deviceClient: { unit: 'dc' } }, 'deviceClient.unit: expected a systemd unit name ending in .service or .target'],
    [{ deviceClient: { httpProxyConfigFile: '~/.aws-iot-device-client/http-proxy.conf' } }, 'deviceClient.httpProxyConfigFile: expected an absolute path'],
  ])('refuses %j in one line', (doc, message) => expect(errorOf(doc)).toBe(`${FILE}: ${message}`));
});
