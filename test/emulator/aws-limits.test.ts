// The message broker's AWS rules: as pure checks, and on real connections (raw MQTT.js clients).
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { effectiveKeepAlive, MAX_PAYLOAD_BYTES, publishRefusal, reservedPublishRefusal, subscribeRefusal, topicTooLarge } from '../../src/emulator/aws-limits.ts';
import { accepted, TOPICS } from '../../src/shared/protocol.ts';
import { CLIENT_ID_PREFIX, closed, connectMqtt, fleetRequest, startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { makeCsr } from './csr.ts';

let ids = 0;
const clientId = () => `${CLIENT_ID_PREFIX}l${process.pid}-${ids++}`;

describe('AWS limits as pure checks', () => {
  it('lets clients publish only to the request topics of reserved APIs', () => {
    for (const ok of [TOPICS.createFromCsr, '$aws/certificates/create/cbor', '$aws/provisioning-templates/t/provision/cbor', '$aws/things/t/shadow/name/n/update', '$aws/things/t/jobs/j1/update', '$aws/rules/my_rule/x/y', '$aws/things/t/greengrassv2/health/json', '$aws/things/t/greengrass/health/json', '$aws/device_location/d/get_position_estimate', 'plain/topic'])
      expect(reservedPublishRefusal(ok, false), ok).toBeUndefined();
    for (const refused of [accepted(TOPICS.createFromCsr), `${TOPICS.registerThing('t')}/rejected`, '$aws/things/t/shadow/update/delta', '$aws/things/t/jobs/notify', '$aws/events/presence/connected/x', '$SYS/broker', '$made-up', '$aws/things/t/greengrassv2/health/cbor'])
      expect(reservedPublishRefusal(refused, false), refused).toMatch(/reserved topic/);
    expect(reservedPublishRefusal(TOPICS.createFromCsr, true)).toMatch(/retained/);
  });

  it('bounds topics, payloads, subscriptions and keep-alive as the quotas page says', () => {
    expect(topicTooLarge('a/'.repeat(7) + 'b')).toBeUndefined();
    expect(topicTooLarge('a/'.repeat(8) + 'b')).toMatch(/7 slashes/);
    expect(topicTooLarge('$aws/rules/r/' + 'a/'.repeat(7) + 'b')).toBeUndefined();
    expect(topicTooLarge('x'.repeat(257))).toMatch(/256 bytes/);
    expect(publishRefusal({ topic: 't', payload: Buffer.alloc(MAX_PAYLOAD_BYTES), qos: 1 })).toBeUndefined();
    expect(publishRefusal({ topic: 't', payload: Buffer.alloc(MAX_PAYLOAD_BYTES + 1), qos: 1 })).toMatch(/message size limit/);
    expect(publishRefusal({ topic: 't', payload: '', qos: 2 })).toMatch(/QoS 2/);
    expect(subscribeRefusal(Array.from({ length: 9 }, (_, i) => ({ topic: `t/${i}`, qos: 1 })), 0)).toMatch(/more than 8/);
    expect(subscribeRefusal([{ topic: 't', qos: 2 }], 0)).toMatch(/QoS 2/);
    expect(subscribeRefusal([{ topic: 't', qos: 1 }], 50)).toMatch(/more than 50/);
    expect([0, 5, 30, 600, 1200, 5000].map(effectiveKeepAlive)).toEqual([1200, 30, 30, 600, 1200, 1200]);
  });
});

/** A certificate allowed everything, to reach the broker's rules past the policy checks. */
async function openClient(t: TestEmulator, options: Parameters<typeof connectMqtt>[2] = {}): Promise<MqttClient> {
  if (!(await t.emulator.control.getPolicy('everything')))
    await t.emulator.control.createPolicy('everything', JSON.stringify({ Statement: [{ Effect: 'Allow', Action: 'iot:*', Resource: '*' }] }));
  const issued = await t.emulator.issueClaim({ policyName: 'everything' });
  return connectMqtt(t.emulator, { certPem: issued.certificatePem, keyPem: issued.privateKeyPem! }, { clientId: clientId(), ...options });
}

describe('AWS rules on real connections', () => {
  it('closes a claim client that publishes a forged reply, which nobody receives', async () => {
    const t = await startTestEmulator();
    const victim = await connectMqtt(t.emulator, t.claim, { clientId: clientId() });
    await victim.subscribeAsync([accepted(TOPICS.registerThing(t.templateName)), accepted(TOPICS.createFromCsr)], { qos: 1 });
    const seen: string[] = [];
    victim.on('message', (topic, payload) => seen.push(`${topic} ${payload}`));
    const attacker = await connectMqtt(t.emulator, t.claim, { clientId: clientId(), protocolVersion: 4 });
    const gone = closed(attacker);
    attacker.publish(accepted(TOPICS.registerThing(t.templateName)), JSON.stringify({ thingName: 'attacker-chosen', deviceConfiguration: {} }), { qos: 1 });
    await gone;
    // The victim's own exchange comes after: a forwarded forgery would have arrived first.
    const own = await fleetRequest(victim, TOPICS.createFromCsr, { certificateSigningRequest: makeCsr('ec-p256').csrPem });
    expect(own.accepted).toBe(true);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toContain(own.body.certificateId);
  });

  it.each([4, 5] as const)('answers no QoS 2 SUBSCRIBE or PUBLISH and closes the connection (MQTT protocol level %i)', async (protocolVersion) => {
    const t = await startTestEmulator();
    const subscriber = await openClient(t, { protocolVersion });
    const received: string[] = [];
    subscriber.on('packetreceive', (p) => received.push(p.cmd));
    const gone = closed(subscriber);
    subscriber.subscribe('some/topic', { qos: 2 });
    await gone;
    expect(received).not.toContain('suback');

    const publisher = await openClient(t, { protocolVersion });
    const publisherGone = closed(publisher);
    const acks: string[] = [];
    publisher.on('packetreceive', (p) => acks.push(p.cmd));
    publisher.publish('some/topic', 'x', { qos: 2 });
    await publisherGone;
    expect(acks).toEqual([]);
  });

  it('closes a connection that sends a message over 128 KB; takes one of exactly 128 KB', async () => {
    const t = await startTestEmulator();
    const client = await openClient(t);
    await client.subscribeAsync('big/topic', { qos: 1 });
    const arrived = new Promise<Buffer>((resolve) => client.once('message', (_t, payload) => resolve(payload)));
    await client.publishAsync('big/topic', Buffer.alloc(MAX_PAYLOAD_BYTES, 1), { qos: 1 });
    expect((await arrived).length).toBe(MAX_PAYLOAD_BYTES);
    const gone = closed(client);
    client.publish('big/topic', Buffer.alloc(10 * 1024 * 1024, 1), { qos: 1 });
    await gone;
  });

  it('clamps the keep-alive to 30..1200 s and tells an MQTT 5 client; refuses a client id over 128 bytes', async () => {
    const t = await startTestEmulator();
    for (const [asked, got] of [[5, 30], [0, 1200]] as const) {
      const client = await openClient(t, { keepalive: asked, protocolVersion: 5 });
      // MQTT.js keeps the CONNACK's properties.
      expect((client as unknown as { _serverProperties?: { serverKeepAlive?: number } })._serverProperties?.serverKeepAlive).toBe(got);
    }
    const longId = `${CLIENT_ID_PREFIX}${'x'.repeat(129 - CLIENT_ID_PREFIX.length)}`;
    await expect(connectMqtt(t.emulator, t.claim, { clientId: longId, protocolVersion: 5 })).rejects.toThrow(/Client Identifier not valid|identifier/i);
    await expect(connectMqtt(t.emulator, t.claim, { clientId: longId, protocolVersion: 4 })).rejects.toThrow(/Identifier rejected|identifier/i);
  });
});
