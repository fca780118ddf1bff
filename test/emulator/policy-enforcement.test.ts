// IoT policies and certificate status, enforced on real connections.
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CertificateAuthority, createCa } from '../../src/emulator/ca.ts';
import { MQTT_ALPN, TOPICS } from '../../src/shared/protocol.ts';
import { CLAIM_POLICY, CLIENT_ID_PREFIX, closed, connectMqtt, fleetRequest, nextMessage, startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { makeCsr } from './csr.ts';
import type { TLSSocket } from 'node:tls';

let ids = 0;
const clientId = () => `${CLIENT_ID_PREFIX}p${process.pid}-${ids++}`;

/** Provisions one device through MQTT and returns its credentials and thing name. */
async function provision(t: TestEmulator, mac: string) {
  const claim = await connectMqtt(t.emulator, t.claim, { clientId: clientId() });
  const { csrPem, keyPem } = makeCsr('ec-p256');
  const created = await fleetRequest(claim, TOPICS.createFromCsr, { certificateSigningRequest: csrPem });
  const registered = await fleetRequest(claim, TOPICS.registerThing(t.templateName), {
    certificateOwnershipToken: created.body.certificateOwnershipToken,
    parameters: { DeviceId: mac },
  });
  claim.end();
  return { certPem: created.body.certificatePem as string, keyPem, certificateId: created.body.certificateId as string, thingName: registered.body.thingName as string };
}

describe('claim certificate policy', () => {
  it('refuses a client id outside client/fleetprov-*', async () => {
    const t = await startTestEmulator();
    await expect(connectMqtt(t.emulator, t.claim, { clientId: 'rogue-1' })).rejects.toThrow(/not authorized/i);
    await expect(connectMqtt(t.emulator, t.claim, { clientId: 'rogue-2', protocolVersion: 4 })).rejects.toThrow(/not authorized/i);
  });

  it('disconnects a claim client that publishes outside its topics', async () => {
    const t = await startTestEmulator();
    const claim = await connectMqtt(t.emulator, t.claim, { clientId: clientId() });
    const gone = closed(claim);
    claim.publish('things/anything/telemetry', 'x', { qos: 1 });
    await gone;
  });

  it('disconnects a claim client that subscribes outside its topic filters (MQTT 3.1.1 too)', async () => {
    const t = await startTestEmulator();
    for (const protocolVersion of [5, 4] as const) {
      const claim = await connectMqtt(t.emulator, t.claim, { clientId: clientId(), protocolVersion });
      const gone = closed(claim);
      claim.subscribe('#', { qos: 1 });
      await gone;
    }
  });

  it('disconnects a claim client that asks for another template', async () => {
    const t = await startTestEmulator();
    const claim = await connectMqtt(t.emulator, t.claim, { clientId: clientId() });
    const gone = closed(claim);
    claim.publish(TOPICS.registerThing('someone-elses'), '{}', { qos: 1 });
    await gone;
  });
});

describe('device certificate policy', () => {
  it('a device connects only as its thing name and publishes only under its own topics', async () => {
    const t = await startTestEmulator();
    const device = await provision(t, '02:00:00:00:00:01');
    await expect(connectMqtt(t.emulator, device, { clientId: 'fp-020000000002' })).rejects.toThrow(/not authorized/i);
    const client = await connectMqtt(t.emulator, device, { clientId: device.thingName });
    await client.publishAsync(`things/${device.thingName}/ok`, 'fine', { qos: 1 });
    const gone = closed(client);
    client.publish('things/fp-020000000002/steal', 'x', { qos: 1 });
    await gone;
  });

  it('Receive is checked per delivered message', async () => {
    const t = await startTestEmulator();
    const { control } = t.emulator;
    await control.createPolicy(
      'narrow-receive',
      JSON.stringify({
        Statement: [
          { Effect: 'Allow', Action: 'iot:Connect', Resource: '*' },
          { Effect: 'Allow', Action: ['iot:Subscribe'], Resource: 'arn:aws:iot:*:*:topicfilter/shared/#' },
          { Effect: 'Allow', Action: ['iot:Publish'], Resource: 'arn:aws:iot:*:*:topic/shared/*' },
          { Effect: 'Allow', Action: ['iot:Receive'], Resource: 'arn:aws:iot:*:*:topic/shared/ok' },
        ],
      }),
    );
    const issued = await t.emulator.issueClaim({ policyName: 'narrow-receive' });
    const creds = { certPem: issued.certificatePem, keyPem: issued.privateKeyPem! };
    const sub = await connectMqtt(t.emulator, creds, { clientId: 'sub' });
    const pub = await connectMqtt(t.emulator, creds, { clientId: 'pub' });
    await sub.subscribeAsync('shared/#', { qos: 1 });
    const topics: string[] = [];
    sub.on('message', (topic) => topics.push(topic));
    const ok = nextMessage(sub, 'shared/ok');
    await pub.publishAsync('shared/secret', 'x', { qos: 1 });
    await pub.publishAsync('shared/ok', 'y', { qos: 1 });
    await ok;
    expect(topics).toEqual(['shared/ok']);
  });

  it('an open connection follows changes to its policies (update, attach, detach)', async () => {
    // A connection compiles its policies once and again only when they change: each change must
    // reach connections already open, not only new ones.
    const t = await startTestEmulator();
    const { control } = t.emulator;
    const allowing = (...topics: string[]) =>
      JSON.stringify({
        Statement: [
          { Effect: 'Allow', Action: 'iot:Connect', Resource: '*' },
          { Effect: 'Allow', Action: 'iot:Publish', Resource: topics.map((topic) => `arn:aws:iot:*:*:topic/${topic}`) },
        ],
      });
    await control.createPolicy('changing', allowing('warm', 'a'));
    await control.createPolicy('extra', allowing('c'));
    const issued = await t.emulator.issueClaim({ policyName: 'changing' });
    const creds = { certPem: issued.certificatePem, keyPem: issued.privateKeyPem! };
    /** Connects, publishes once (its policies are compiled), makes the change, then publishes on `topic`. */
    const publishesAfter = async (change: () => Promise<unknown>, topic: string): Promise<boolean> => {
      const client = await connectMqtt(t.emulator, creds, { clientId: clientId() });
      await client.publishAsync('warm', 'x', { qos: 1 });
      await change();
      const acked = client.publishAsync(topic, 'x', { qos: 1 }).then(
        () => true,
        () => false,
      );
      const outcome = await Promise.race([closed(client).then(() => false), acked]);
      client.end(true);
      return outcome;
    };
    expect(await publishesAfter(async () => undefined, 'b')).toBe(false);
    expect(await publishesAfter(() => control.updatePolicy('changing', allowing('warm', 'b')), 'b')).toBe(true);
    expect(await publishesAfter(() => control.attachPolicy('extra', issued.certificateId), 'c')).toBe(true);
    expect(await publishesAfter(() => control.detachPolicy('extra', issued.certificateId), 'c')).toBe(false);
  });
});

describe('certificate status and identity', () => {
  it('refuses INACTIVE and REVOKED certificates at CONNECT, and accepts them again once ACTIVE', async () => {
    const t = await startTestEmulator();
    const device = await provision(t, '02:00:00:00:00:03');
    await t.emulator.control.updateCertificate(device.certificateId, 'INACTIVE');
    await expect(connectMqtt(t.emulator, device, { clientId: device.thingName })).rejects.toThrow(/not authorized/i);
    await t.emulator.control.updateCertificate(device.certificateId, 'ACTIVE');
    (await connectMqtt(t.emulator, device, { clientId: `${device.thingName}`, protocolVersion: 4 })).end();
    await t.emulator.control.updateCertificate(device.certificateId, 'REVOKED');
    await expect(connectMqtt(t.emulator, device, { clientId: device.thingName })).rejects.toThrow(/not authorized/i);
    await expect(t.emulator.control.updateCertificate(device.certificateId, 'ACTIVE')).rejects.toThrow(/revoked/);
  });

  it('refuses a certificate that was issued but never registered (PENDING_ACTIVATION)', async () => {
    const t = await startTestEmulator();
    const claim = await connectMqtt(t.emulator, t.claim, { clientId: clientId() });
    const { csrPem, keyPem } = makeCsr('ec-p256');
    const created = await fleetRequest(claim, TOPICS.createFromCsr, { certificateSigningRequest: csrPem });
    // Its policy would let it in: only the status keeps it out.
    await t.emulator.control.attachPolicy(CLAIM_POLICY, created.body.certificateId);
    await expect(connectMqtt(t.emulator, { certPem: created.body.certificatePem, keyPem }, { clientId: clientId() })).rejects.toThrow(/not authorized/i);
  });

  it('refuses a certificate from another CA during the TLS handshake, and an unknown one of ours at CONNECT', async () => {
    const t = await startTestEmulator();
    const other = new CertificateAuthority(createCa());
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const foreign = {
      certPem: other.issueClient(pair.publicKey.export({ type: 'spki', format: 'der' })),
      keyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    };
    await expect(connectMqtt(t.emulator, foreign, { clientId: clientId() })).rejects.toThrow();
    await expect(connectMqtt(t.emulator, foreign, { clientId: clientId(), protocolVersion: 4 })).rejects.toThrow();

    const issued = await t.emulator.issueClaim({ policyName: CLAIM_POLICY });
    await t.emulator.control.detachPolicy(CLAIM_POLICY, issued.certificateId);
    await t.emulator.control.updateCertificate(issued.certificateId, 'INACTIVE');
    await t.emulator.control.deleteCertificate(issued.certificateId);
    await expect(connectMqtt(t.emulator, { certPem: issued.certificatePem, keyPem: issued.privateKeyPem! }, { clientId: clientId() })).rejects.toThrow(/not authorized/i);
  });

  it('refuses a second CONNECT with the same client id within a second', async () => {
    const t = await startTestEmulator();
    const id = clientId();
    const first = await connectMqtt(t.emulator, t.claim, { clientId: id });
    first.end(true);
    await expect(connectMqtt(t.emulator, t.claim, { clientId: id })).rejects.toThrow();
  });

  it('accepts ALPN x-amzn-mqtt-ca', async () => {
    const t = await startTestEmulator();
    const client = await connectMqtt(t.emulator, t.claim, { clientId: clientId(), ALPNProtocols: [MQTT_ALPN] });
    expect((client.stream as TLSSocket).alpnProtocol).toBe(MQTT_ALPN);
    expect((await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: makeCsr('ec-p256').csrPem })).accepted).toBe(true);
  });
});

describe('no $SYS topics', () => {
  it("tells no client of other clients' connections, even one whose policy allows $SYS/# (AWS IoT Core has no $SYS topics)", async () => {
    const t = await startTestEmulator();
    await t.emulator.control.createPolicy(
      'everything',
      JSON.stringify({ Statement: [{ Effect: 'Allow', Action: ['iot:Connect', 'iot:Subscribe', 'iot:Receive', 'iot:Publish'], Resource: '*' }] }),
    );
    const issued = await t.emulator.issueClaim({ policyName: 'everything' });
    const creds = { certPem: issued.certificatePem, keyPem: issued.privateKeyPem! };
    const watcher = await connectMqtt(t.emulator, creds, { clientId: 'watcher' });
    await watcher.subscribeAsync(['$SYS/#', 'marker'], { qos: 1 });
    const topics: string[] = [];
    watcher.on('message', (topic) => topics.push(topic));
    // aedes would announce this one before its CONNACK, and its SUBSCRIBE and disconnect after.
    const other = await connectMqtt(t.emulator, creds, { clientId: 'other' });
    await other.subscribeAsync('anything', { qos: 1 });
    await other.endAsync();
    // Delivered after anything announced before it, on the same connection.
    const marker = nextMessage(watcher, 'marker');
    await watcher.publishAsync('marker', 'x', { qos: 1 });
    await marker;
    expect(topics).toEqual(['marker']);
    watcher.end(true);
  });
});
