// The fleet-provisioning API in CBOR, CreateKeysAndCertificate with an empty message, and AWS's
// port 443 rule (ALPN x-amzn-mqtt-ca required), with raw MQTT.js clients.
import { decode, encode } from 'cborg';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { MQTT_ALPN, TOPICS } from '../../src/shared/protocol.ts';
import { CLIENT_ID_PREFIX, connectMqtt, fleetRequest, startTestEmulator } from '../helpers/emulator.ts';
import { makeCsr } from './csr.ts';

let ids = 0;
const clientId = () => `${CLIENT_ID_PREFIX}f${process.pid}-${ids++}`;
const cbor = (jsonTopic: string) => jsonTopic.replace(/\/json$/, '/cbor');

/** One exchange in CBOR: subscribe to both replies, publish, decode the one that comes. */
async function cborRequest(client: MqttClient, topic: string, payload: Uint8Array) {
  await client.subscribeAsync([`${topic}/accepted`, `${topic}/rejected`], { qos: 1 });
  const reply = new Promise<{ accepted: boolean; body: Record<string, unknown> }>((resolve) => {
    client.once('message', (t, body) => resolve({ accepted: t === `${topic}/accepted`, body: decode(body) as Record<string, unknown> }));
  });
  await client.publishAsync(topic, Buffer.from(payload), { qos: 1 });
  return reply;
}

describe('payload formats', () => {
  it('serves all three APIs in CBOR, replies included', async () => {
    const t = await startTestEmulator();
    const client = await connectMqtt(t.emulator, t.claim, { clientId: clientId() });
    const { csrPem } = makeCsr('ec-p256');
    const created = await cborRequest(client, cbor(TOPICS.createFromCsr), encode({ certificateSigningRequest: csrPem }));
    expect(created.accepted).toBe(true);
    expect(created.body.certificateId).toMatch(/^[0-9a-f]{64}$/);
    const registered = await cborRequest(
      client,
      cbor(TOPICS.registerThing(t.templateName)),
      encode({ certificateOwnershipToken: created.body.certificateOwnershipToken as string, parameters: { DeviceId: '0200000000cb' } }),
    );
    expect(registered).toEqual({ accepted: true, body: { thingName: 'fp-0200000000cb', deviceConfiguration: { thingNamePrefix: 'fp-' } } });
    const keys = await cborRequest(client, cbor(TOPICS.createKeys), new Uint8Array());
    expect(new X509Certificate(keys.body.certificatePem as string).checkPrivateKey(createPrivateKey(keys.body.privateKey as string))).toBe(true);
    const bad = await cborRequest(client, cbor(TOPICS.createFromCsr), Uint8Array.of(0xff, 0x00));
    expect(bad).toMatchObject({ accepted: false, body: { statusCode: 400, errorCode: 'InvalidPayload', errorMessage: 'the payload is not valid CBOR' } });
  });

  it('takes CreateKeysAndCertificate with an empty message, as AWS documents it', async () => {
    const t = await startTestEmulator();
    const client = await connectMqtt(t.emulator, t.claim, { clientId: clientId(), protocolVersion: 4 });
    const created = await fleetRequest(client, TOPICS.createKeys, '');
    expect(created.accepted, JSON.stringify(created.body)).toBe(true);
    expect(created.body.privateKey).toMatch(/BEGIN RSA PRIVATE KEY/);
    // Other APIs still need their fields.
    const empty = await fleetRequest(client, TOPICS.createFromCsr, '');
    expect(empty.body).toMatchObject({ statusCode: 400, errorCode: 'InvalidPayload' });
  });
});

describe('port 443 mode', () => {
  it('requires ALPN x-amzn-mqtt-ca; without it the connection ends', async () => {
    const t = await startTestEmulator({ alpnRequired: true });
    await expect(connectMqtt(t.emulator, t.claim, { clientId: clientId(), timeoutMs: 5000 })).rejects.toThrow();
    await expect(connectMqtt(t.emulator, t.claim, { clientId: clientId(), ALPNProtocols: ['mqtt'], timeoutMs: 5000 })).rejects.toThrow();
    const client = await connectMqtt(t.emulator, t.claim, { clientId: clientId(), ALPNProtocols: [MQTT_ALPN] });
    expect((await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: makeCsr('ec-p256').csrPem })).accepted).toBe(true);
  });
});
