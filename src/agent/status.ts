// `fp-agent status`: what the committed state says, and when the certificate expires.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AgentConfig } from '../shared/config.ts';
import { readStoredDeviceId } from './identify.ts';
import { readState, type ProvisioningState } from './state.ts';

/** The committed state and the certificate it names. */
export async function readProvisioned(config: AgentConfig): Promise<{ state: ProvisioningState; cert?: X509Certificate } | undefined> {
  const state = await readState(config);
  if (!state) return undefined;
  const cert = await readFile(state.certificatePath, 'utf8').then((pem) => new X509Certificate(pem), () => undefined);
  return { state, cert };
}

export interface StatusReport {
  provisioned: boolean;
  deviceId?: string;
  thingName?: string;
  certificateId?: string;
  /** ISO 8601. */
  certificateNotAfter?: string;
  certificateExpired?: boolean;
  provisionedAt?: string;
  endpoint?: string;
  certificatePath?: string;
  privateKeyPath?: string;
}

export async function status(config: AgentConfig): Promise<StatusReport> {
  const found = await readProvisioned(config);
  if (!found) return { provisioned: false, deviceId: await readStoredDeviceId(config) };
  const { state, cert } = found;
  const notAfter = cert ? new Date(cert.validTo) : new Date(state.notAfter);
  return {
    provisioned: true,
    deviceId: state.deviceId,
    thingName: state.thingName,
    certificateId: state.certificateId,
    certificateNotAfter: notAfter.toISOString(),
    certificateExpired: notAfter.getTime() < Date.now(),
    provisionedAt: state.provisionedAt,
    endpoint: state.endpoint,
    certificatePath: state.certificatePath,
    privateKeyPath: state.privateKeyPath,
  };
}

export function formatStatus(report: StatusReport): string {
  const rows: Array<[string, string | undefined]> = report.provisioned
    ? [
        ['provisioned', 'yes'],
        ['device id', report.deviceId],
        ['thing name', report.thingName],
        ['certificate id', report.certificateId],
        ['certificate expires', `${report.certificateNotAfter}${report.certificateExpired ? ' (EXPIRED)' : ''}`],
        ['provisioned at', report.provisionedAt],
        ['endpoint', report.endpoint],
        ['certificate', report.certificatePath],
        ['private key', report.privateKeyPath],
      ]
    : [
        ['provisioned', 'no'],
        ['device id', report.deviceId ?? '(not identified yet)'],
      ];
  const width = Math.max(...rows.map(([k]) => k.length)) + 1;
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v ?? ''}`).join('\n') + '\n';
}
