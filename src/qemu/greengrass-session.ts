// The hand-off to Greengrass, proven from the emulator's side (what AWS IoT would have seen), not
// from the guest's word: a CONNECT accepted for the thing's client id with the device certificate,
// then on that same connection a SUBSCRIBE to the deployment notifications and a PUBLISH to the
// health topic, both allowed by the certificate's policies, which are exactly the stack's device
// policy. The lines are the broker's (src/emulator/broker.ts).
import { reEscape } from './console.ts';
import type { FleetEmulator } from './fleet-emulator.ts';
import { greengrassTopics } from './greengrass-standin.ts';
import { check } from './run.ts';

export interface GreengrassSessionOptions {
  thing: string;
  /** The device certificate (state.json's certificateId). */
  certificateId: string;
  /** Emulator log index to search from (lines of earlier boots do not count). */
  from: number;
  timeoutMs: number;
}

/** Indexes of the session's lines in the emulator log. */
export interface GreengrassSession {
  connect: number;
  subscribe: number;
  publish: number;
}

export async function waitForGreengrassSession(fleet: FleetEmulator, o: GreengrassSessionOptions): Promise<GreengrassSession> {
  const { log } = fleet;
  const topics = greengrassTopics(o.thing);
  const client = reEscape(o.thing);
  const what = `the emulator log (Greengrass's session as ${o.thing})`;
  const subscribeLine = await log.waitFor(new RegExp(`^subscribe: allowed client ${client} topic filter ${reEscape(topics.deploymentNotify)}$`), o.timeoutMs, o.from, what);
  const subscribe = log.lines.indexOf(subscribeLine, o.from);
  const publishLine = await log.waitFor(new RegExp(`^publish: allowed client ${client} topic ${reEscape(topics.health)}$`), o.timeoutMs, subscribe + 1, what);
  const publish = log.lines.indexOf(publishLine, subscribe + 1);

  // aedes keeps one connection per client id (a new CONNECT replaces the old one), so the last
  // CONNECT accepted for the thing before the SUBSCRIBE is the connection that subscribed, and
  // with none between SUBSCRIBE and PUBLISH, also the one that published.
  const accepted = new RegExp(`^connect: accepted client ${client} certificate (\\w+)$`);
  const connects = (a: number, b: number) => log.lines.slice(a, b).flatMap((l, i) => (accepted.test(l) ? [a + i] : []));
  const connect = connects(o.from, subscribe).at(-1);
  check(connect !== undefined, `the emulator logged a SUBSCRIBE by ${o.thing} but no accepted CONNECT before it`);
  const certificate = accepted.exec(log.lines[connect]!)![1];
  check(certificate === o.certificateId, `${o.thing} connected with certificate ${certificate}, not the device certificate ${o.certificateId}`);
  check(!connects(subscribe, publish).length, `${o.thing} reconnected between its SUBSCRIBE and its PUBLISH: not one session`);
  const dropped = log.lines.slice(connect, publish).filter((l) => l.startsWith(`policy: disconnecting client ${o.thing}:`));
  check(!dropped.length, `the emulator disconnected ${o.thing} by policy:\n${dropped.join('\n')}`);

  // Allowed by the device policy: it is the only policy attached to the device certificate.
  const policies = await fleet.current.control.listAttachedPolicies(o.certificateId);
  check(
    policies.length === 1 && policies[0] === fleet.names.devicePolicy,
    `certificate ${o.certificateId} has policies [${policies.join(', ')}], expected only the stack's device policy ${fleet.names.devicePolicy}`,
  );
  return { connect, subscribe, publish };
}
