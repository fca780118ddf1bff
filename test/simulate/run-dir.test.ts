// Where simulated devices keep their files: memory (a real tmpfs, /dev/shm) unless --keep or
// there is no such tmpfs with room; and leftovers of killed runs are swept from it.
import { execa } from 'execa';
import { mkdir, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BYTES_PER_RUNNING_DEVICE, chooseRunDir, MEMORY_ROOT } from '../../src/simulate/run-dir.ts';
import { tmpDir } from '../helpers/tmp.ts';

const made: string[] = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function projectRunDir(): Promise<string> {
  return path.join(await tmpDir('fp-sim-'), '.fp-yocto', 'simulate', `20261203T120000-${Math.random().toString(16).slice(2, 8)}`);
}

describe('chooseRunDir', () => {
  it('puts a run in /dev/shm (a tmpfs) without --keep, named after this process and the run', async () => {
    expect((await statfs(MEMORY_ROOT)).type).toBe(0x01021994);
    const projectDir = await projectRunDir();
    const dir = await chooseRunDir({ projectRunDir: projectDir, keep: false, concurrency: 50 });
    expect(dir).toEqual({ path: path.join(MEMORY_ROOT, `fp-yocto-simulate-${process.pid}-${path.basename(projectDir)}`), inMemory: true });
  });

  it('keeps the project directory with --keep, on a file system that is not a tmpfs, or without room', async () => {
    const projectDir = await projectRunDir();
    expect(await chooseRunDir({ projectRunDir: projectDir, keep: true, concurrency: 1 })).toEqual({ path: projectDir, inMemory: false });
    expect(await chooseRunDir({ projectRunDir: projectDir, keep: false, concurrency: 1, memoryRoot: await tmpDir('fp-not-tmpfs-') })).toEqual({ path: projectDir, inMemory: false });
    expect(await chooseRunDir({ projectRunDir: projectDir, keep: false, concurrency: 1, memoryRoot: '/nonexistent' })).toEqual({ path: projectDir, inMemory: false });
    const { bavail, bsize } = await statfs(MEMORY_ROOT);
    const tooMany = Math.floor((bavail * bsize) / BYTES_PER_RUNNING_DEVICE) + 1;
    expect(await chooseRunDir({ projectRunDir: projectDir, keep: false, concurrency: tooMany })).toEqual({ path: projectDir, inMemory: false });
  });

  it("sweeps the memory directories of runs whose process is gone, not a live run's", async () => {
    const ended = execa('true');
    const gone = ended.pid!;
    await ended;
    const stale = path.join(MEMORY_ROOT, `fp-yocto-simulate-${gone}-20261203T110000-0a0b0c`);
    const live = path.join(MEMORY_ROOT, `fp-yocto-simulate-${process.pid}-20261203T110000-0d0e0f`);
    made.push(stale, live);
    for (const dir of [stale, live]) {
      await mkdir(path.join(dir, '0a0b0c000000', 'out'), { recursive: true });
      await writeFile(path.join(dir, '0a0b0c000000', 'out', 'device.key.pem'), 'not a key');
    }
    await chooseRunDir({ projectRunDir: await projectRunDir(), keep: false, concurrency: 1 });
    const names = await readdir(MEMORY_ROOT);
    expect(names).not.toContain(path.basename(stale));
    expect(names).toContain(path.basename(live));
  });
});
