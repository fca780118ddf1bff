import { defineConfig } from 'vitest/config';

// The QEMU first-boot tests (docs/qemu-test.md): run only by `npm run test:qemu`. The first run
// builds the cached Debian root filesystem with debootstrap, hence the long hook timeout; the
// VMs run one at a time because CI has two cores.
export default defineConfig({
  test: {
    include: ['test/qemu/**/*.test.ts'],
    testTimeout: 10 * 60_000,
    hookTimeout: 45 * 60_000,
    maxWorkers: 1,
    fileParallelism: false,
  },
});
