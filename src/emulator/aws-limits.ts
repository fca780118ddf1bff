// What AWS IoT Core's message broker refuses, as pure checks on MQTT packets. Each rule cites the
// AWS IoT Developer Guide page it follows:
// - "MQTT" > "AWS IoT differences from MQTT specifications"
//   (https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html#mqtt-differences)
// - "Reserved topics" (https://docs.aws.amazon.com/iot/latest/developerguide/reserved-topics.html)
// - "AWS IoT Core message broker and protocol limits and quotas"
//   (https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits)
// A refusal is a reason string: the broker then closes the connection without the packet's
// acknowledgement, which is what AWS does for QoS 2 and for unsupported operations on reserved topics.

/** "Message size: The payload for every publish request can be no larger than 128 KB." */
export const MAX_PAYLOAD_BYTES = 128 * 1024;
/** The largest packet read at all: the payload cap plus room for a topic and MQTT 5 properties. */
export const MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 8 * 1024;
/** "Client ID size: 128 bytes of UTF-8 encoded characters." */
export const MAX_CLIENT_ID_BYTES = 128;
/** "Topic size: ... no larger than 256 bytes of UTF-8 encoded characters." */
export const MAX_TOPIC_BYTES = 256;
/** "Maximum number of slashes in topic and topic filter: 7" (not counting a $aws/rules/<rule>/ prefix). */
export const MAX_TOPIC_SLASHES = 7;
/** "Maximum number of subscriptions per subscribe call: 8." */
export const MAX_FILTERS_PER_SUBSCRIBE = 8;
/** "Subscriptions per connection: 50." */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 50;
/** Keep-alive: 0 means the 1200 s default, below 30 s counts as 30, above 1200 s as 1200. */
export const KEEP_ALIVE = { min: 30, max: 1200 } as const;

const utf8Bytes = (text: string) => Buffer.byteLength(text, 'utf8');

/** The keep-alive AWS applies for the one a client asks for (seconds). */
export function effectiveKeepAlive(requested: number): number {
  if (!requested) return KEEP_ALIVE.max;
  return Math.min(KEEP_ALIVE.max, Math.max(KEEP_ALIVE.min, requested));
}

/** Topic names and filters over the size or depth limit. */
export function topicTooLarge(topic: string): string | undefined {
  if (utf8Bytes(topic) > MAX_TOPIC_BYTES) return `topic is longer than ${MAX_TOPIC_BYTES} bytes`;
  const slashes = topic.replace(/^\$aws\/rules\/[^/]+\//, '').split('/').length - 1;
  if (slashes > MAX_TOPIC_SLASHES) return `topic has more than ${MAX_TOPIC_SLASHES} slashes`;
  return undefined;
}

/**
 * Reserved topics a client may publish to (the "Publish" rows of the reserved-topics tables);
 * every other topic that starts with `$` is not for clients: replies (/accepted, /rejected),
 * notifications and events are subscribe-only, and no new `$` topic can be made.
 */
const PUBLISHABLE_RESERVED: readonly RegExp[] = [
  /^\$aws\/certificates\/create(?:-from-csr)?\/(?:json|cbor)$/,
  /^\$aws\/provisioning-templates\/[^/]+\/provision\/(?:json|cbor)$/,
  /^\$aws\/rules\/[^/]+(?:\/.*)?$/,
  /^\$aws\/things\/[^/]+\/shadow\/(?:name\/[^/]+\/)?(?:get|update|delete)$/,
  /^\$aws\/things\/[^/]+\/jobs\/(?:get|start-next|[^/]+\/get|[^/]+\/update)$/,
  /^\$aws\/things\/[^/]+\/defender\/metrics\/(?:json|cbor)$/,
  /^\$aws\/things\/[^/]+\/streams\/[^/]+\/(?:get|describe)\/(?:json|cbor)$/,
  /^\$aws\/device_location\/[^/]+\/get_position_estimate$/,
  // Greengrass core devices report their status here. The topic is missing from the
  // reserved-topics page, but AWS IoT Greengrass's "Minimal AWS IoT policy for AWS IoT Greengrass V2
  // core devices" grants iot:Publish on it
  // (https://docs.aws.amazon.com/greengrass/v2/developerguide/device-auth.html#greengrass-core-minimal-iot-policy).
  /^\$aws\/things\/[^/]+\/greengrass(?:v2)?\/health\/json$/,
];

export function reservedPublishRefusal(topic: string, retain: boolean): string | undefined {
  if (!topic.startsWith('$')) return undefined;
  if (!PUBLISHABLE_RESERVED.some((r) => r.test(topic))) return `${topic} is a reserved topic clients may not publish to`;
  // Retained messages: "You can't publish to a reserved topic with the RETAIN flag set."
  if (retain) return `a retained message cannot be published to the reserved topic ${topic}`;
  return undefined;
}

export interface PublishLike {
  topic: string;
  payload: Buffer | string;
  qos: number;
  retain?: boolean;
}

export function publishRefusal(packet: PublishLike): string | undefined {
  // "AWS IoT Core doesn't support publishing or subscribing with QoS level 2. When QoS level 2
  // is requested, the message broker doesn't send a PUBACK or SUBACK."
  if (packet.qos > 1) return 'QoS 2 is not supported';
  if (utf8Bytes(String(packet.topic)) === 0) return 'empty topic';
  const size = typeof packet.payload === 'string' ? utf8Bytes(packet.payload) : packet.payload.length;
  if (size > MAX_PAYLOAD_BYTES) return `payload of ${size} bytes is over the ${MAX_PAYLOAD_BYTES}-byte message size limit`;
  return topicTooLarge(packet.topic) ?? reservedPublishRefusal(packet.topic, Boolean(packet.retain));
}

export function subscribeRefusal(filters: Array<{ topic: string; qos: number }>, alreadySubscribed: number): string | undefined {
  if (filters.length > MAX_FILTERS_PER_SUBSCRIBE) return `more than ${MAX_FILTERS_PER_SUBSCRIBE} topic filters in one SUBSCRIBE`;
  for (const f of filters) {
    if (f.qos > 1) return 'QoS 2 is not supported';
    const tooLarge = topicTooLarge(f.topic);
    if (tooLarge) return tooLarge;
  }
  if (alreadySubscribed + filters.length > MAX_SUBSCRIPTIONS_PER_CONNECTION) return `more than ${MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions on one connection`;
  return undefined;
}

export interface ConnectLike {
  clientId: string;
  will?: { topic: string; payload: Buffer | string; qos: number; retain?: boolean } | null;
}

export function connectRefusal(packet: ConnectLike): string | undefined {
  if (utf8Bytes(packet.clientId ?? '') > MAX_CLIENT_ID_BYTES) return `client id is longer than ${MAX_CLIENT_ID_BYTES} bytes`;
  if (packet.will) return publishRefusal(packet.will) && `will message: ${publishRefusal(packet.will)}`;
  return undefined;
}
