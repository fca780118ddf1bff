// The agent writes with fs.writeSync instead of Node's stdout/stderr streams (src/agent/stdio.ts).
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const STDIO = fileURLToPath(new URL('../../src/agent/stdio.ts', import.meta.url));

describe('writeOut', () => {
  it('loses nothing when the descriptor is non-blocking and the reader is slower than the writer', async () => {
    // Touching process.stdout opens fd 1 as a libuv pipe, which makes it non-blocking: 8 MiB at once
    // overruns the 64 KiB pipe, so writeSync meets EAGAIN and the rest must go through the stream.
    const size = 8 << 20;
    const script = `process.stdout; const { writeOut } = await import(${JSON.stringify(STDIO)}); writeOut(1, 'x'.repeat(${size})); writeOut(2, 'done\\n');`;
    const r = await execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stripFinalNewline: false });
    expect(r.stdout.length).toBe(size);
    expect(r.stderr).toBe('done\n');
  });

  it('writes a line to stderr and stdout of a plain child in order', async () => {
    const script = `const { writeOut } = await import(${JSON.stringify(STDIO)}); writeOut(1, 'out\\n'); writeOut(2, 'err\\n');`;
    const r = await execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { all: true, stripFinalNewline: false });
    expect(r.all).toBe('out\nerr\n');
  });
});
