import { defineCommand } from 'citty';
import { UserError } from '../../shared/errors.ts';

// Placeholder until its issue lands.
export default defineCommand({
  meta: { name: 'qemu-test', description: 'not available yet' },
  run() {
    throw new UserError('fp-yocto qemu-test is not available in this version yet');
  },
});
