// A ControlPlane whose calls go to an emulator in another process (see control-server.ts).
import type { ControlPlane } from './control-plane.ts';
import { CONTROL_METHODS } from './control-methods.ts';

/** An error thrown by the remote control plane, with the AWS exception name it had there. */
export class RemoteControlError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

export async function callControl(url: string, token: string, method: string, args: unknown[]): Promise<unknown> {
  const response = await fetch(`${url}/${method}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ args }),
  });
  const body = (await response.json()) as { result?: unknown; error?: { name: string; message: string } };
  if (!response.ok || body.error) throw new RemoteControlError(body.error?.name ?? 'Error', body.error?.message ?? `HTTP ${response.status}`);
  return body.result ?? undefined;
}

export function remoteControlPlane(url: string, token: string): ControlPlane {
  const entries = CONTROL_METHODS.map((method) => [method, (...args: unknown[]) => callControl(url, token, method, args)]);
  return Object.fromEntries(entries) as unknown as ControlPlane;
}

/** Whether a control server answers at url with this token. */
export async function pingControl(url: string, token: string): Promise<boolean> {
  try {
    const response = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(2000) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}
