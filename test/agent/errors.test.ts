import { describe, expect, it } from 'vitest';
import { DeadlineError } from '../../src/agent/backoff.ts';
import { classify, ClockError, Fault, RejectedError } from '../../src/agent/errors.ts';
import { ConnackError } from '../../src/agent/mqtt/connection.ts';
import { ConfigError } from '../../src/shared/errors.ts';

const withCode = (code: string, message = code) => Object.assign(new Error(message), { code });
const rejectedWith = (statusCode: number, errorCode: string, errorMessage = '') =>
  new RejectedError('RegisterThing', { statusCode, errorCode, errorMessage });

describe('classify', () => {
  it.each(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH'])('%s is transient', (code) => {
    expect(classify(withCode(code)).kind).toBe('transient');
  });

  it('reports TLS time errors as "time not synced", transient', () => {
    const c = classify(withCode('CERT_NOT_YET_VALID', 'certificate is not yet valid'));
    expect(c).toMatchObject({ kind: 'transient', fault: 'clock', message: expect.stringContaining('time not synced') });
    expect(classify(new ClockError('claim certificate', new Date(2030, 0), new Date(2000, 0))).message).toMatch(/^time not synced/);
  });

  it('treats a server the root CA cannot verify as permanent', () => {
    expect(classify(withCode('SELF_SIGNED_CERT_IN_CHAIN'))).toMatchObject({ kind: 'permanent', exitCode: 78 });
    expect(classify(withCode('ERR_TLS_CERT_ALTNAME_INVALID'))).toMatchObject({ kind: 'permanent', exitCode: 78 });
  });

  it('retries throttling and server errors, not client errors', () => {
    expect(classify(rejectedWith(429, 'ThrottlingException')).kind).toBe('transient');
    expect(classify(rejectedWith(503, 'ServiceUnavailableException')).kind).toBe('transient');
    expect(classify(rejectedWith(400, 'InvalidParametersException'))).toMatchObject({ kind: 'permanent', exitCode: 78 });
    expect(classify(rejectedWith(404, 'ResourceNotFoundException'))).toMatchObject({ kind: 'permanent', exitCode: 78 });
  });

  it('names the hook when it denies', () => {
    const c = classify(rejectedWith(403, 'AccessDeniedException', 'Pre-provisioning hook denied the request'));
    expect(c).toMatchObject({ kind: 'permanent', exitCode: 78 });
    expect(c.message).toMatch(/^provisioning denied by the pre-provisioning hook \(403 /);
  });

  it('keeps the exit code of user errors', () => {
    expect(classify(new ConfigError('/etc/x.yaml', 'port', 'a number'))).toEqual({
      kind: 'permanent',
      fault: 'configFile',
      message: '/etc/x.yaml: port: expected a number',
      exitCode: 78,
    });
    expect(classify(new Fault('claimFiles', 'claim key missing'))).toMatchObject({ exitCode: 78 });
    expect(classify(new DeadlineError(1000, 3, 'ECONNREFUSED'))).toMatchObject({ fault: 'deadline', exitCode: 75 });
  });

  it('refuses MQTT clients the server does not authorise (CONNACK 5, MQTT 5 0x87), retries a busy server', () => {
    expect(classify(new ConnackError(5))).toMatchObject({ kind: 'permanent', fault: 'notAuthorized' });
    expect(classify(new ConnackError(0x87))).toMatchObject({ kind: 'permanent', fault: 'notAuthorized' });
    expect(classify(new ConnackError(3))).toMatchObject({ kind: 'transient', fault: 'network' });
    // A bare code 5 from elsewhere is no CONNACK.
    expect(classify(withCode('5'))).toMatchObject({ kind: 'transient' });
  });

  it('never lets a message span lines', () => {
    expect(classify(new Fault('claimFiles', 'claimKeyPath /x: is empty\n(really)')).message).toBe('claimKeyPath /x: is empty (really)');
    expect(classify(new Error('a\r\nb')).message).toBe('a b');
  });

  it('does not retry bugs', () => {
    expect(classify(new TypeError('x is undefined'))).toMatchObject({ kind: 'permanent', exitCode: 1 });
  });
});
