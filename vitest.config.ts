import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/qemu/**', '**/node_modules/**'], // QEMU tests: npm run test:qemu
    // Builds dist/ once so tests can run the real fp-yocto and fp-agent executables.
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores in CI: keep TLS-heavy files from starving each other.
    maxWorkers: 2,
  },
});
