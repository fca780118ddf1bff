// The pre-provisioning hook, as ONE JavaScript source: the CloudFormation stack deploys it as the
// Lambda's inline code (index.js, CommonJS) and the emulator runs the very same text in-process.
//
// It accepts a MAC address written as aa:bb:cc:dd:ee:ff, aa-bb-..., aa_bb_... (one separator used
// throughout) or aabbccddeeff, in either case, and nothing else; it rewrites the parameter to the
// canonical lower-case plain form so a device gets the same thing name whatever its format.
// A device may send that one parameter and nothing else: any other name is refused, so device
// input can never set a value the template did not mean it to (AWS IoT merges the request's
// parameters over the template's defaults).
// Environment: DEVICE_ID_PARAMETER (default DeviceId); ALLOWED_DEVICE_IDS, an optional
// comma-separated allow-list (any of the accepted forms).

/** Name of the template parameter that carries the device id. */
export const DEVICE_ID_PARAMETER = 'DeviceId';

export const HOOK_ENV = {
  parameter: 'DEVICE_ID_PARAMETER',
  allowList: 'ALLOWED_DEVICE_IDS',
} as const;

export const PRE_PROVISIONING_HOOK_SOURCE = `'use strict';
// fp-yocto pre-provisioning hook: validates the device id (a MAC address) and an optional allow-list.
const PLAIN = /^[0-9a-f]{12}$/i;
const SEPARATED = /^[0-9a-f]{2}([:_-])[0-9a-f]{2}(?:\\1[0-9a-f]{2}){4}$/i;

function canonicalMac(value) {
  if (typeof value !== 'string') return null;
  if (PLAIN.test(value)) return value.toLowerCase();
  if (SEPARATED.test(value)) return value.replace(/[:_-]/g, '').toLowerCase();
  return null;
}

function allowList(text) {
  if (!text || !text.trim()) return null;
  return new Set(text.split(',').map((s) => canonicalMac(s.trim())).filter(Boolean));
}

exports.handler = async (event) => {
  const name = process.env.DEVICE_ID_PARAMETER || 'DeviceId';
  const parameters = (event && event.parameters) || {};
  const mac = canonicalMac(parameters[name]);
  const allowed = allowList(process.env.ALLOWED_DEVICE_IDS);
  const extra = Object.keys(parameters).filter((key) => key !== name);
  let reason = null;
  if (extra.length) reason = 'unexpected parameter ' + extra.slice(0, 3).join(', ') + ' (only ' + name + ' may be sent)';
  else if (!mac) reason = 'parameter ' + name + ' is not a MAC address';
  else if (allowed && !allowed.has(mac)) reason = 'device ' + mac + ' is not on the allow-list';
  // Log the decision, never the certificate or any token.
  console.log(JSON.stringify({ certificateId: event && event.certificateId, allow: !reason, reason: reason }));
  if (reason) return { allowProvisioning: false };
  return { allowProvisioning: true, parameterOverrides: { [name]: mac } };
};
`;
