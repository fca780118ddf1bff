// The claim of a simulated fleet, loaded once per worker thread: read and checked as a device
// checks it (loadClaim), and one TLS context built from it that every claim connection reuses.
// Without this each simulated device re-read three files and re-parsed certificate, key and CA
// twice (the check, then tls.connect's own context): ~15 % of a device's CPU in the profile.
import { createSecureContext } from 'node:tls';
import { loadClaim, type Claim } from '../agent/claim.ts';
import { secureContextOptions } from '../agent/mqtt-session.ts';
import type { AgentConfig } from '../shared/config.ts';

export async function loadSharedClaim(config: Pick<AgentConfig, 'claimCertPath' | 'claimKeyPath' | 'rootCaPath'>): Promise<Claim> {
  const claim = await loadClaim(config);
  return { ...claim, secureContext: createSecureContext(secureContextOptions(claim)) };
}
