// The canonical device id table, and the agent's own formatting agreeing with it for every source.
import { describe, expect, it } from 'vitest';
import { formatMac, formatSerial } from '../../src/agent/device-id.ts';
import { canonicalDeviceId, DEVICE_ID_KIND_OF_SOURCE } from '../../src/shared/device-id.ts';
import { DEVICE_ID_SOURCES } from '../../src/shared/config.ts';

describe('canonical device ids', () => {
  it('reads MAC addresses in the four forms, either case, as plain lower-case hex', () => {
    for (const mac of ['aa:bb:cc:dd:ee:0f', 'AA-BB-CC-DD-EE-0F', 'aa_bb_cc_dd_ee_0f', 'AABBCCDDEE0F']) expect(canonicalDeviceId('mac', mac)).toBe('aabbccddee0f');
    for (const bad of ['aa:bb-cc:dd:ee:0f', 'aabbccddee0', 'aabbccddeegg', ' aabbccddee0f', 123, null]) expect(canonicalDeviceId('mac', bad)).toBeUndefined();
  });

  it('reads machine ids (32 hex digits) in lower case', () => {
    expect(canonicalDeviceId('machine-id', '0123456789ABCDEF0123456789abcdef')).toBe('0123456789abcdef0123456789abcdef');
    expect(canonicalDeviceId('machine-id', 'uninitialized')).toBeUndefined();
  });

  it('makes serials thing-name safe and refuses firmware placeholders', () => {
    expect(canonicalDeviceId('serial', '  SN 2024/0001\0')).toBe('sn-2024-0001');
    expect(canonicalDeviceId('serial', 'x'.repeat(200))).toHaveLength(128);
    for (const placeholder of ['To be filled by O.E.M.', '0000', 'None', 'N/A', 'Default string', 'System Serial Number', '---']) {
      expect(canonicalDeviceId('serial', placeholder), placeholder).toBeUndefined();
    }
  });

  it('agrees with what the agent sends with its default format, for every id source', () => {
    const samples: Record<string, string[]> = {
      mac: ['AA:BB:CC:DD:EE:0F', '00-11-22-33-44-55'],
      'machine-id': ['0123456789abcdef0123456789abcdef'],
      serial: ['SN 2024/0001', 'C02XK1JHJG5J', 'abc_DEF:1-2', `${'x'.repeat(130)}!`],
    };
    for (const source of DEVICE_ID_SOURCES) {
      const kind = DEVICE_ID_KIND_OF_SOURCE[source];
      for (const raw of samples[kind]!) {
        const sent = source === 'mac' ? formatMac(raw, 'plain') : formatSerial(raw, 'plain');
        // What the agent sends is already canonical, and the hook keeps it as it is.
        expect(canonicalDeviceId(kind, sent), `${source} ${raw}`).toBe(sent);
        // A device set to another format (or raw) still lands on the same id.
        if (source === 'mac') expect(canonicalDeviceId(kind, formatMac(raw, 'colon'))).toBe(sent);
        else expect(canonicalDeviceId(kind, formatSerial(raw, 'raw'))).toBe(sent);
      }
    }
  });
});
