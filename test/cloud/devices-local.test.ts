// The device table end to end against a real emulator: the stack deployed by the local provider,
// the device store writing through the control plane, and devices provisioning over MQTT with
// mutual TLS, so the hook (the same source as the Lambda) decides from the same table.
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { makeClaimKey } from '../../src/cloud/claim.ts';
import { DeviceStore } from '../../src/cloud/devices/device-store.ts';
import type { Ui } from '../../src/cloud/provider.ts';
import { LocalProvider } from '../../src/cloud/providers/local.ts';
import { buildStack, stackParameterValues, type StackOptions } from '../../src/cloud/stack.ts';
import { defaultStackOptions } from '../../src/cloud/template-yaml.ts';
import { EMULATOR_ACCOUNT_ID, EMULATOR_REGION, startEmulator } from '../../src/emulator/index.ts';
import { TOPICS } from '../../src/shared/protocol.ts';
import { connectMqtt, fleetRequest } from '../helpers/emulator.ts';
import { tmpDir } from '../helpers/tmp.ts';

const silent: Ui = { info: () => {}, warn: () => {}, confirm: async () => true };
const ID = 'aabbccddee01';

async function setup(options: Partial<StackOptions> = {}) {
  const dir = await tmpDir();
  const emulator = await startEmulator({ port: 0, dir: path.join(dir, 'emulator'), connectRateLimit: false });
  onTestFinished(() => emulator.close());
  const provider = new LocalProvider({ control: emulator.control, region: EMULATOR_REGION, accountId: EMULATOR_ACCOUNT_ID });
  const stack = { ...defaultStackOptions(), requireAllowList: true, ...options };
  const { names } = await provider.deploy({ stackName: 'fp-yocto', template: buildStack(stack), parameters: stackParameterValues(stack) }, silent);
  const store = new DeviceStore(provider.dynamoDb(), names.deviceTable!, { baseDelayMs: 0 });
  const { keyPem, csrPem } = makeClaimKey('fp-yocto-claim');
  const claim = await provider.createCertificateFromCsr(csrPem);
  await provider.attachPolicy(names.claimPolicy, claim);
  const connect = async (clientId: string) => {
    const client = await connectMqtt(emulator, { certPem: claim.certificatePem, keyPem }, { clientId });
    onTestFinished(() => void client.endAsync());
    return client;
  };
  /** CreateCertificateFromCsr for a key (a new one unless given), then RegisterThing; returns both replies. */
  const device = (client: MqttClient) => {
    const key = makeClaimKey('device');
    const certify = async (csrPem = key.csrPem) => (await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: csrPem })).body as {
      certificateId: string;
      certificateOwnershipToken: string;
    };
    const register = (token: string, parameters: Record<string, string> = { DeviceId: ID }) =>
      fleetRequest(client, TOPICS.registerThing(names.templateName), { certificateOwnershipToken: token, parameters });
    return { key, certify, register };
  };
  return { emulator, provider, names, store, connect, device };
}

describe('device table with the emulator', () => {
  it('lets only listed ids provision, once each, with their attributes; reset re-arms, revoke refuses; every reason is on the item', async () => {
    const { emulator, store, connect, device } = await setup({ thingAttributes: ['model'] });
    expect(await store.allow([{ deviceId: ID, attributes: { model: 'x1', batch: '7' } }])).toEqual({ added: 1, reallowed: 0, updated: 0, present: 0 });
    const client = await connect(`fleetprov-${ID}`);

    const unlisted = device(client);
    const refused = await unlisted.register((await unlisted.certify()).certificateOwnershipToken, { DeviceId: '00:11:22:33:44:55' });
    expect(refused.body).toMatchObject({ statusCode: 403, errorCode: 'ACCESS_DENIED' });

    const first = device(client);
    const cert = await first.certify();
    const registered = await first.register(cert.certificateOwnershipToken, { DeviceId: 'AA:BB:CC:DD:EE:01' });
    expect(registered.accepted).toBe(true);
    expect(await emulator.control.describeThing(`fp-yocto-${ID}`)).toMatchObject({ attributes: { deviceId: ID, model: 'x1' } });
    const [record] = await store.get([ID]);
    expect(record).toMatchObject({ deviceId: ID, allowed: true, certificateId: cert.certificateId, attributes: { model: 'x1', batch: '7' } });

    // Another key presenting the same id: refused, and the operator sees why.
    const impostor = device(client);
    const other = await impostor.certify();
    expect((await impostor.register(other.certificateOwnershipToken)).body).toMatchObject({ statusCode: 403 });
    const [afterImpostor] = await store.get([ID]);
    expect(afterImpostor!.certificateId).toBe(cert.certificateId);
    expect(afterImpostor!.lastRefusal).toBe(
      `device ${ID} already provisioned with certificate ${cert.certificateId} (ACTIVE) on ${record!.approvedAt}; refused certificate ${other.certificateId} (run fp-yocto devices reset ${ID} to let it provision again)`,
    );

    // A repaired device: reset, and its new key provisions.
    expect(await store.reset([ID])).toEqual({ reset: [{ deviceId: ID, certificateId: cert.certificateId }], unknown: [] });
    const repaired = device(client);
    const again = await repaired.certify();
    expect((await repaired.register(again.certificateOwnershipToken)).accepted).toBe(true);
    expect((await store.get([ID]))[0]).toMatchObject({ certificateId: again.certificateId });
    expect((await store.get([ID]))[0]!.lastRefusal).toBeUndefined();

    expect(await store.revoke([ID, '001122334455'])).toEqual({ revoked: [ID], notListed: ['001122334455'] });
    await store.reset([ID]);
    const late = device(client);
    expect((await late.register((await late.certify()).certificateOwnershipToken)).body).toMatchObject({ statusCode: 403 });
    expect((await store.get([ID]))[0]!.lastRefusal).toMatch(new RegExp(`^device ${ID} was removed from the allow-list on `));
    expect({ allowed: await store.count('allowed'), provisioned: await store.count('provisioned'), refused: await store.count('refused') }).toEqual({ allowed: 0, provisioned: 0, refused: 1 });
  });

  it('two devices presenting one id at the same moment: exactly one provisions', async () => {
    const { store, connect, device } = await setup();
    await store.allow([{ deviceId: ID }]);
    // Different client ids (the claim policy allows any after the prefix): truly two connections.
    const [a, b] = await Promise.all([connect(`fleetprov-${ID}`), connect('fleetprov-impostor')]);
    const [da, db] = [device(a), device(b)];
    const [ca, cb] = await Promise.all([da.certify(), db.certify()]);
    const replies = await Promise.all([da.register(ca.certificateOwnershipToken), db.register(cb.certificateOwnershipToken)]);
    expect(replies.map((r) => r.accepted).sort()).toEqual([false, true]);
    const loser = replies.find((r) => !r.accepted)!;
    expect(loser.body).toMatchObject({ statusCode: 403, errorCode: 'ACCESS_DENIED' });
    const winner = replies[0]!.accepted ? ca : cb;
    expect((await store.get([ID]))[0]!.certificateId).toBe(winner.certificateId);
  });

  it('does not lock out a device whose first registration failed after the hook approved it, nor one whose reply was lost', async () => {
    const { emulator, names, store, connect, device } = await setup();
    await store.allow([{ deviceId: ID }]);
    const client = await connect(`fleetprov-${ID}`);
    const d = device(client);
    // The template cannot be applied (its thing group is gone): the hook approved, RegisterThing fails.
    await emulator.control.deleteThingGroup(names.thingGroupName);
    const failed = await d.certify();
    expect((await d.register(failed.certificateOwnershipToken)).body).toMatchObject({ statusCode: 400 });
    expect((await store.get([ID]))[0]!.certificateId).toBe(failed.certificateId);
    await emulator.control.createThingGroup(names.thingGroupName);

    // The retry comes with a new key: that certificate never became a device's, so it may take the id.
    const retry = device(client);
    const second = await retry.certify();
    expect((await retry.register(second.certificateOwnershipToken)).accepted).toBe(true);
    expect((await store.get([ID]))[0]!.certificateId).toBe(second.certificateId);

    // The reply of a successful RegisterThing was lost: the agent asks for a new certificate for
    // the same key (a CSR proves it holds it), and gets in.
    const third = await retry.certify();
    expect((await retry.register(third.certificateOwnershipToken)).accepted).toBe(true);
    expect((await store.get([ID]))[0]!.certificateId).toBe(third.certificateId);
  });
});
