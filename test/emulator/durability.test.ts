// The registry's promise: a RegisterThing the emulator acknowledged is in the registry after the
// emulator is killed with SIGKILL in the middle of a load, and restarted.
import { generateKeyPairSync } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCsr } from '../../src/agent/csr.ts';
import { readInfo } from '../../src/emulator/discovery.ts';
import { startEmulator } from '../../src/emulator/index.ts';
import { TOPICS } from '../../src/shared/protocol.ts';
import { CLIENT_ID_PREFIX, connectMqtt, fleetRequest, setupFleet, spawnCliEmulator, TEMPLATE_NAME } from '../helpers/emulator.ts';
import { tmpDir } from '../helpers/tmp.ts';

const CLIENTS = 16;
/** Acknowledged registrations after which the emulator is killed, with others still in flight. */
const KILL_AFTER = 40;

describe('durability', () => {
  it('keeps every acknowledged RegisterThing across kill -9 under load', async () => {
    const root = await tmpDir('fp-durability-');
    const dir = path.join(root, 'state');
    // Set up in-process, then serve from a separate process that can be killed.
    const setup = await startEmulator({ port: 0, dir });
    const claim = await setupFleet(setup, root);
    const caPem = setup.caPem;
    await setup.close();
    const { child } = await spawnCliEmulator(dir);
    const server = { endpoint: 'localhost', port: (await readInfo(dir))!.port, caPem };

    const acknowledged: Array<{ thingName: string; certificateId: string }> = [];
    let next = 0;
    const worker = async () => {
      for (;;) {
        const n = next++;
        const mac = (0x020000000000 + n).toString(16).padStart(12, '0');
        const csr = createCsr(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey, mac);
        const client = await connectMqtt(server, claim, { clientId: `${CLIENT_ID_PREFIX}${mac}` });
        const created = await fleetRequest(client, TOPICS.createFromCsr, { certificateSigningRequest: csr });
        const registered = await fleetRequest(client, TOPICS.registerThing(TEMPLATE_NAME), {
          certificateOwnershipToken: created.body.certificateOwnershipToken,
          parameters: { DeviceId: mac },
        });
        expect(registered.accepted, JSON.stringify(registered.body)).toBe(true);
        acknowledged.push({ thingName: registered.body.thingName, certificateId: created.body.certificateId });
        if (acknowledged.length === KILL_AFTER) child.kill('SIGKILL');
        client.end(true);
      }
    };
    // Every worker ends with a refused or dropped connection once the emulator is gone.
    const outcomes = await Promise.allSettled(Array.from({ length: CLIENTS }, worker));
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    expect((await child).signal).toBe('SIGKILL');
    expect(acknowledged.length).toBeGreaterThanOrEqual(KILL_AFTER);

    const again = await startEmulator({ port: 0, dir });
    try {
      for (const { thingName, certificateId } of acknowledged) {
        expect(await again.control.describeThing(thingName), thingName).toMatchObject({ principals: [expect.stringContaining(certificateId)] });
        expect(await again.control.describeCertificate(certificateId)).toMatchObject({ status: 'ACTIVE' });
      }
    } finally {
      await again.close();
    }
  });
});
