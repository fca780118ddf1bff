import { describe, expect, it } from 'vitest';
import { createLogWriter } from '../../src/emulator/log-writer.ts';

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('emulator log writer', () => {
  it('writes the lines of one turn in one write, in order, each with the time it was logged', async () => {
    const writes: string[] = [];
    let clock = Date.parse('2026-01-02T03:04:05.006Z');
    const log = createLogWriter((text) => writes.push(text), () => clock);
    log.line('connect: accepted client a');
    clock += 1;
    log.line('publish: allowed client a topic t');
    expect(writes).toEqual([]);
    await nextTurn();
    expect(writes).toEqual(['2026-01-02T03:04:05.006Z connect: accepted client a\n2026-01-02T03:04:05.007Z publish: allowed client a topic t\n']);
    log.line('later');
    await nextTurn();
    expect(writes).toHaveLength(2);
    expect(writes[1]).toBe('2026-01-02T03:04:05.007Z later\n');
  });

  it('writes what is queued at once on flush, and nothing when nothing is', async () => {
    const writes: string[] = [];
    const log = createLogWriter((text) => writes.push(text), () => 0);
    log.flush();
    log.line('stopping');
    log.flush();
    expect(writes).toEqual(['1970-01-01T00:00:00.000Z stopping\n']);
    await nextTurn();
    expect(writes).toHaveLength(1);
  });
});
