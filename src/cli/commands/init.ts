import { defineCommand } from 'citty';
import { UserError } from '../../shared/errors.ts';

// Placeholder until its issue lands.
export default defineCommand({
  meta: { name: 'init', description: 'not available yet' },
  run() {
    throw new UserError('fp-yocto init is not available in this version yet');
  },
});
