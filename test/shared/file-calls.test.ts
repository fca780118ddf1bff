// The agent's own file calls use libuv's thread pool on a device (a hung call must not stop the
// event loop, where the watchdog's timer runs) and none in a thread that opted out (fp-yocto
// simulate's workers). Each case runs in a child process whose pool has one thread, stuck
// opening a FIFO that nobody writes to: a call that needs the pool cannot finish until the test
// opens the FIFO's other end.
import { execa } from 'execa';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/run.ts';
import { tmpDir } from '../helpers/tmp.ts';

const url = (file: string) => pathToFileURL(path.join(ROOT, file)).href;

/** Runs `body` (module code) with the one pool thread stuck on `fifo`; resolves with what it logs. */
async function withStuckPool(body: string): Promise<string[]> {
  const dir = await tmpDir('fp-file-calls-');
  await execa('mkfifo', [path.join(dir, 'fifo')]);
  const script = `
    import { open } from 'node:fs/promises';
    import { existsSync, openSync, closeSync } from 'node:fs';
    import path from 'node:path';
    import { useSynchronousFileCallsInThisThread } from ${JSON.stringify(url('src/shared/file-calls.ts'))};
    import { makeDirs, probeWritable, removeStaleTemps, renameDurable, writeFileAtomic } from ${JSON.stringify(url('src/shared/atomic-file.ts'))};
    const dir = ${JSON.stringify(dir)};
    const fifo = path.join(dir, 'fifo');
    // The pool's only thread now waits in open(2) for a writer.
    const stuck = open(fifo, 'r').then((h) => h.close());
    // Lets the pool thread reach its open(2) before anything else is queued.
    await new Promise((resolve) => setImmediate(resolve));
    const log = (line) => process.stdout.write(line + '\\n');
    const unblock = () => closeSync(openSync(fifo, 'w'));
    ${body}
    await stuck;
  `;
  const r = await execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { UV_THREADPOOL_SIZE: '1' }, reject: false });
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

describe('file calls', () => {
  it('go through the thread pool by default: a write waits behind a stuck pool thread', async () => {
    const lines = await withStuckPool(`
      const file = path.join(dir, 'a', 'state.json');
      const write = writeFileAtomic(file, '{}\\n', 0o644).then(() => log('written'));
      // Several turns of the event loop: a synchronous write would be done by now.
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
      log(existsSync(file) ? 'present before the pool was free' : 'absent while the pool is stuck');
      unblock();
      await write;
    `);
    expect(lines).toEqual(['absent while the pool is stuck', 'written']);
  });

  it('are synchronous in a thread that opted out: every atomic-file step finishes with the pool stuck', async () => {
    const lines = await withStuckPool(`
      useSynchronousFileCallsInThisThread();
      const sub = path.join(dir, 'a', 'b');
      await makeDirs(sub, 0o755);
      await probeWritable(sub);
      await writeFileAtomic(path.join(sub, 'key.pem.pending'), 'key\\n', 0o600);
      await renameDurable(path.join(sub, 'key.pem.pending'), path.join(sub, 'key.pem'));
      await removeStaleTemps(sub);
      log(existsSync(path.join(sub, 'key.pem')) ? 'all done with the pool stuck' : 'missing');
      unblock();
    `);
    expect(lines).toEqual(['all done with the pool stuck']);
  });
});
