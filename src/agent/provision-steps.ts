// The checkpoints of `fp-agent provision`, in order. FP_AGENT_TEST_PAUSE_AT stops the agent at
// one of them so that tests can kill it there (see test-hooks.ts).
export const CHECKPOINTS = [
  'identified',
  'key-written',
  'connected',
  'certificate-issued',
  'thing-registered',
  'verified',
  'results-written',
  'greengrass-staged',
  'greengrass-written',
  'committed',
] as const;

export type Checkpoint = (typeof CHECKPOINTS)[number];
