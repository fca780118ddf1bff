import { describe, expect, it } from 'vitest';
import { tlsOptionsFor } from '../../src/agent/mqtt-session.ts';

const base = { host: 'abc-ats.iot.eu-west-1.amazonaws.com', certPem: 'c', keyPem: 'k', caPem: 'ca' };

describe('tlsOptionsFor', () => {
  it('verifies the server by name against the configured root CA, TLS 1.2 or later', () => {
    expect(tlsOptionsFor({ ...base, port: 8883 })).toEqual({
      host: base.host,
      port: 8883,
      servername: base.host,
      cert: 'c',
      key: 'k',
      ca: 'ca',
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    });
  });

  it('sends no SNI for an IP address endpoint (SNI takes host names only)', () => {
    const options = tlsOptionsFor({ ...base, host: '10.0.2.2', port: 8883 });
    expect(options.host).toBe('10.0.2.2');
    expect(options).not.toHaveProperty('servername');
  });

  it('offers ALPN x-amzn-mqtt-ca on port 443 only', () => {
    expect(tlsOptionsFor({ ...base, port: 443 }).ALPNProtocols).toEqual(['x-amzn-mqtt-ca']);
    expect(tlsOptionsFor({ ...base, port: 8883 }).ALPNProtocols).toBeUndefined();
  });
});
