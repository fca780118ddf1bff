// The registry's group commit (src/emulator/registry.ts): a change is acknowledged only after an
// fsync of the WAL that started after its commit, and one fsync runs at a time, the commits made
// meanwhile sharing the next. The real fsync runs; the spy only holds the first one back until
// the test lets it finish, so the order is the test's, not the disk's.
import { open } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Registry } from '../../src/emulator/registry.ts';
import { tmpDir } from '../helpers/tmp.ts';

const turn = () => new Promise((resolve) => setImmediate(resolve));
const thing = (thingName: string) => ({ thingName, attributes: {}, thingGroups: [], principals: [] });

describe('registry: group commit', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('acknowledges a change only after an fsync started after its commit, one fsync at a time', async () => {
    const dir = await tmpDir('fp-registry-sync-');
    const registry = Registry.open(dir);
    // A FileHandle's prototype, to watch every fsync the registry starts on its WAL.
    const probe = await open(path.join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const original = proto.sync;
    const events: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const firstStarted = new Promise<void>((resolve) => (started = resolve));
    let syncs = 0;
    vi.spyOn(proto, 'sync').mockImplementation(async function (this: unknown) {
      const n = ++syncs;
      events.push(`sync ${n} starts`);
      if (n === 1) {
        started();
        await held;
      }
      await original.call(this);
      events.push(`sync ${n} done`);
    });

    const acked = (name: string) => registry.write((tx) => tx.putThing(thing(name))).then(() => events.push(`${name} acknowledged`));
    const a = acked('a');
    await firstStarted; // a committed; its fsync is held
    const b = acked('b');
    await turn(); // b commits while sync 1 runs
    const c = acked('c');
    await turn(); // so does c
    expect(events).toEqual(['sync 1 starts']);
    // Committed, so readable; not yet acknowledged.
    expect(registry.getThing('c')?.thingName).toBe('c');

    release();
    await Promise.all([a, b, c]);
    expect(events).toEqual(['sync 1 starts', 'sync 1 done', 'a acknowledged', 'sync 2 starts', 'sync 2 done', 'b acknowledged', 'c acknowledged']);
    await registry.close();
  });
});
