// No input from the network may crash or stall the emulator: hostile client ids, topics and
// payloads against a real `fp-yocto emulator` process, which must still be running and serving
// a normal provisioning afterwards.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { readInfo } from '../../src/emulator/discovery.ts';
import { startEmulator } from '../../src/emulator/index.ts';
import { TOPICS } from '../../src/shared/protocol.ts';
import { CLIENT_ID_PREFIX, connectMqtt, fleetRequest, setupFleet, spawnCliEmulator, TEMPLATE_NAME } from '../helpers/emulator.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { makeCsr } from './csr.ts';

const PROTOTYPE_NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'prototype', 'then'];
const HOSTILE_IDS = [...PROTOTYPE_NAMES, `${CLIENT_ID_PREFIX}__proto__`, `${CLIENT_ID_PREFIX}constructor`, 'é'.repeat(64), '../../etc/passwd', '#', '+', '$aws', '\u2028'];
const HOSTILE_TOPICS = [
  ...PROTOTYPE_NAMES,
  ...PROTOTYPE_NAMES.map((n) => `things/${n}/x`),
  ...PROTOTYPE_NAMES.map((n) => TOPICS.registerThing(n)),
  '$aws/things/__proto__/shadow/update',
  '$aws/certificates/create/json',
  'a//b',
  '/',
];
const HOSTILE_PAYLOADS: Array<string | Buffer> = [
  '',
  'null',
  '[]',
  '"text"',
  '42',
  '{"__proto__": {"polluted": true}}',
  '{"constructor": {"prototype": {"polluted": true}}}',
  '{"certificateSigningRequest": {"toString": 1}}',
  '{"certificateOwnershipToken": ["a"], "parameters": {"__proto__": "x"}}',
  '{"certificateOwnershipToken": "x", "parameters": {"DeviceId": {"a": 1}}}',
  `{"certificateSigningRequest": "${'A'.repeat(60_000)}"}`,
  `${'['.repeat(5000)}${']'.repeat(5000)}`,
  randomBytes(512),
];

/** Sends everything, ignoring what the emulator answers (it may well disconnect us). */
async function spray(client: MqttClient, topics: string[], payloads: Array<string | Buffer>) {
  const gone = new Promise<void>((resolve) => client.once('close', () => resolve()));
  for (const topic of topics) {
    client.subscribe(topic, { qos: 1 });
    for (const payload of payloads) client.publish(topic, payload, { qos: 1 });
  }
  // Either the emulator drops us (a policy or protocol refusal), or every packet was handled:
  // a ping answered after them all proves it read them.
  await Promise.race([gone, new Promise<void>((resolve) => client.publish('fence', '', { qos: 1 }, () => resolve()))]);
  client.end(true);
}

describe('hostile input', () => {
  it('keeps running and serving after hostile client ids, topics and payloads', { timeout: 120_000 }, async () => {
    const root = await tmpDir('fp-hostile-');
    const dir = path.join(root, 'state');
    const setup = await startEmulator({ port: 0, dir });
    const claim = await setupFleet(setup, root);
    await setup.control.createPolicy('everything', JSON.stringify({ Statement: [{ Effect: 'Allow', Action: 'iot:*', Resource: '*' }] }));
    const open = await setup.issueClaim({ policyName: 'everything' });
    const caPem = setup.caPem;
    await setup.close();
    const { child } = await spawnCliEmulator(dir);
    const server = { endpoint: 'localhost', port: (await readInfo(dir))!.port, caPem };
    const permissive = { certPem: open.certificatePem, keyPem: open.privateKeyPem! };

    // Pass by pass, so the same id does not come back within AWS's one CONNECT per second.
    for (const [creds, protocolVersion] of [[permissive, 5], [permissive, 4], [claim, 5]] as const) {
      for (const [i, clientId] of HOSTILE_IDS.entries()) {
        // The claim's policy refuses these ids; the permissive certificate lets them in.
        const client = await connectMqtt(server, creds, { clientId, protocolVersion, timeoutMs: 5000 }).catch(() => undefined);
        if (client) await spray(client, i === 0 ? HOSTILE_TOPICS : HOSTILE_TOPICS.slice(0, 3), i === 0 ? HOSTILE_PAYLOADS : HOSTILE_PAYLOADS.slice(0, 3));
        expect(child.exitCode, `emulator died after client id ${JSON.stringify(clientId)}`).toBeNull();
      }
    }
    let payloads = 0;
    for (const payload of HOSTILE_PAYLOADS) {
      const client = await connectMqtt(server, claim, { clientId: `${CLIENT_ID_PREFIX}hostile-${payloads++}`, timeoutMs: 5000 }).catch(() => undefined);
      if (client) await spray(client, [TOPICS.createFromCsr, TOPICS.createKeys, TOPICS.registerThing(TEMPLATE_NAME)], [payload]);
      expect(child.exitCode).toBeNull();
    }

    // Still serving: a device provisions as usual.
    const device = await connectMqtt(server, claim, { clientId: `${CLIENT_ID_PREFIX}after` });
    const created = await fleetRequest(device, TOPICS.createFromCsr, { certificateSigningRequest: makeCsr('ec-p256').csrPem });
    const registered = await fleetRequest(device, TOPICS.registerThing(TEMPLATE_NAME), { certificateOwnershipToken: created.body.certificateOwnershipToken, parameters: { DeviceId: '02000000abcd' } });
    expect(registered.body.thingName).toBe('fp-02000000abcd');
    expect(child.exitCode).toBeNull();
  });
});
