import { defineCommand } from 'citty';
import { UserError } from '../../shared/errors.ts';

// Placeholder until its issue lands.
export default defineCommand({
  meta: { name: 'destroy', description: 'not available yet' },
  run() {
    throw new UserError('fp-yocto destroy is not available in this version yet');
  },
});
