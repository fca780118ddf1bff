// Where fleet-provisioning replies go: to the connection that published the request, subscribed
// or not (AWS: "through the same MQTT connection used to publish the API request"; Greengrass
// nucleus lite never subscribes), exactly once, and never to another connection.
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { accepted, rejected, TOPICS } from '../../src/shared/protocol.ts';
import { CLIENT_ID_PREFIX, connectMqtt, fleetRequest, startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { makeCsr } from './csr.ts';

let ids = 0;
const clientId = () => `${CLIENT_ID_PREFIX}r${process.pid}-${ids++}`;

/** Every control packet the client sends, by command name. */
function sentCommands(client: MqttClient): string[] {
  const sent: string[] = [];
  client.on('packetsend', (packet) => sent.push(packet.cmd));
  return sent;
}

/** Every message the client receives, by topic, with its QoS. */
function received(client: MqttClient): Array<{ topic: string; qos: number }> {
  const seen: Array<{ topic: string; qos: number }> = [];
  client.on('message', (topic, _payload, packet) => seen.push({ topic, qos: packet.qos }));
  return seen;
}

async function provisionWithoutSubscribing(t: TestEmulator, client: MqttClient, mac: string, qos: 0 | 1 = 1) {
  const { csrPem } = makeCsr('ec-p256');
  const created = await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: csrPem }, { subscribe: false, qos });
  expect(created.accepted, JSON.stringify(created.body)).toBe(true);
  const registered = await fleetRequest(
    client,
    TOPICS.registerThing(t.templateName),
    { certificateOwnershipToken: created.body.certificateOwnershipToken, parameters: { DeviceId: mac } },
    { subscribe: false, qos },
  );
  expect(registered.accepted, JSON.stringify(registered.body)).toBe(true);
  return { certificateId: created.body.certificateId as string, thingName: registered.body.thingName as string };
}

describe('fleet-provisioning replies', () => {
  it.each([4, 5] as const)('reach a client that never subscribes (MQTT protocol level %i), at the QoS of its request', async (protocolVersion) => {
    const t = await startTestEmulator();
    const client = await connectMqtt(t.emulator, t.claim, { clientId: clientId(), protocolVersion });
    const sent = sentCommands(client);
    const seen = received(client);
    const mac = `0200000000${protocolVersion}0`;
    const { thingName } = await provisionWithoutSubscribing(t, client, mac);
    expect(thingName).toBe(`fp-${mac}`);
    expect(sent).not.toContain('subscribe');
    expect(seen).toEqual([
      { topic: accepted(TOPICS.createFromCsr), qos: 1 },
      { topic: accepted(TOPICS.registerThing(t.templateName)), qos: 1 },
    ]);
    // A QoS 0 request gets its reply too, at QoS 0; a rejection comes the same way.
    const bad = await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: 'nope' }, { subscribe: false, qos: 0 });
    expect(bad).toMatchObject({ accepted: false, body: { statusCode: 400 } });
    expect(seen.at(-1)).toEqual({ topic: rejected(TOPICS.createFromCsr), qos: 0 });
    expect(await t.emulator.control.describeThing(thingName)).toMatchObject({ thingName });
  });

  it('reach a subscribed client once, even through overlapping subscriptions', async () => {
    const t = await startTestEmulator();
    const client = await connectMqtt(t.emulator, t.claim, { clientId: clientId() });
    await client.subscribeAsync([accepted(TOPICS.createFromCsr), `${TOPICS.createFromCsr}/+`], { qos: 1 });
    const seen = received(client);
    const body = () => ({ certificateSigningRequest: makeCsr('ec-p256').csrPem });
    expect((await fleetRequest(client, TOPICS.createFromCsr, body(), { subscribe: false })).accepted).toBe(true);
    expect((await fleetRequest(client, TOPICS.createFromCsr, body(), { subscribe: false })).accepted).toBe(true);
    // A last exchange as a fence: a duplicate of either reply would have come before its answer.
    expect((await fleetRequest(client, TOPICS.createFromCsr, 'not json', { subscribe: false })).accepted).toBe(false);
    expect(seen.map((m) => m.topic)).toEqual([accepted(TOPICS.createFromCsr), accepted(TOPICS.createFromCsr), rejected(TOPICS.createFromCsr)]);
  });

  it("never reach another connection, even one subscribed to the same reply topics", async () => {
    const t = await startTestEmulator();
    const requester = await connectMqtt(t.emulator, t.claim, { clientId: clientId(), protocolVersion: 4 });
    const bystander = await connectMqtt(t.emulator, t.claim, { clientId: clientId() });
    const replyTopics = [TOPICS.createFromCsr, TOPICS.registerThing(t.templateName)].flatMap((topic) => [accepted(topic), rejected(topic)]);
    await bystander.subscribeAsync([...replyTopics, `${TOPICS.createFromCsr}/+`], { qos: 1 });
    const seenByBystander = received(bystander);
    const fromRequester = await provisionWithoutSubscribing(t, requester, '020000000077');
    // The bystander's own request is answered after the requester's: had any of the requester's
    // replies reached it, they would have come first.
    const own = await fleetRequest(bystander, TOPICS.createFromCsr, { certificateSigningRequest: makeCsr('ec-p256').csrPem });
    expect(own.accepted).toBe(true);
    expect(own.body.certificateId).not.toBe(fromRequester.certificateId);
    expect(seenByBystander.map((m) => m.topic)).toEqual([accepted(TOPICS.createFromCsr)]);
  });

  it('never reach another connection when the requester subscribed too', async () => {
    const t = await startTestEmulator();
    const a = await connectMqtt(t.emulator, t.claim, { clientId: clientId() });
    const b = await connectMqtt(t.emulator, t.claim, { clientId: clientId() });
    await b.subscribeAsync([`${TOPICS.createFromCsr}/accepted`, `${TOPICS.createFromCsr}/rejected`], { qos: 1 });
    const seenByB: string[] = [];
    b.on('message', (_topic, payload) => seenByB.push(JSON.parse(String(payload)).certificateId));
    const fromA = (await fleetRequest(a, TOPICS.createFromCsr, { certificateSigningRequest: makeCsr('ec-p256').csrPem })).body;
    // B's own request is answered after A's: had A's reply reached B, it would come first.
    const fromB = (await fleetRequest(b, TOPICS.createFromCsr, { certificateSigningRequest: makeCsr('ec-p256').csrPem })).body;
    expect(seenByB).toEqual([fromB.certificateId]);
    expect(fromA.certificateId).not.toBe(fromB.certificateId);
  });
});
