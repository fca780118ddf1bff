import { describe, expect, it } from 'vitest';
import { formatMac, formatSerial, isPlaceholderSerial, isUniversalMac, macDigits } from '../../src/agent/device-id.ts';

describe('MAC addresses', () => {
  it('accepts the four written forms, one separator throughout', () => {
    for (const s of ['AA:BB:CC:00:11:22', 'aa-bb-cc-00-11-22', 'aa_bb_cc_00_11_22', 'aabbcc001122']) {
      expect(macDigits(s)).toBe('aabbcc001122');
    }
    expect(macDigits('aa:bb-cc:00:11:22')).toBeUndefined();
    expect(macDigits('aa:bb:cc:00:11')).toBeUndefined();
  });

  it('formats as configured', () => {
    expect(formatMac('02:42:AC:11:00:02\n', 'plain')).toBe('0242ac110002');
    expect(formatMac('02:42:ac:11:00:02', 'colon')).toBe('02:42:ac:11:00:02');
    expect(formatMac('0242ac110002', 'dash')).toBe('02-42-ac-11-00-02');
    expect(formatMac('0242ac110002', 'underscore')).toBe('02_42_ac_11_00_02');
    expect(formatMac(' 02:42:AC:11:00:02 ', 'raw')).toBe('02:42:AC:11:00:02');
  });

  it('tells universal from locally administered, multicast and zero addresses', () => {
    expect(isUniversalMac('00:1b:21:3a:4f:5e')).toBe(true);
    expect(isUniversalMac('02:42:ac:11:00:02')).toBe(false); // docker, locally administered
    expect(isUniversalMac('01:00:5e:00:00:01')).toBe(false); // multicast
    expect(isUniversalMac('00:00:00:00:00:00')).toBe(false);
  });
});

describe('serials', () => {
  it('drops NULs and space, lower-cases and keeps thing-name characters', () => {
    expect(formatSerial('10000000ABCDEF01\0', 'plain')).toBe('10000000abcdef01');
    expect(formatSerial('  VMware-56 4d 2e/x \n', 'plain')).toBe('vmware-56-4d-2e-x');
    expect(formatSerial('  Mixed Case \n', 'raw')).toBe('Mixed Case');
  });

  it('spots placeholders firmware leaves behind', () => {
    for (const s of ['To Be Filled By O.E.M.', 'Default string', '0000000000', '', 'Not Specified']) {
      expect(isPlaceholderSerial(s)).toBe(true);
    }
    expect(isPlaceholderSerial('PF3ABCDE')).toBe(false);
  });
});
