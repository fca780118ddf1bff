// The endpoints custom resource, run as Lambda runs it: its inline source in a fresh context,
// with the SDK module and the HTTPS response to CloudFormation replaced by recorders.
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ENDPOINTS_RESOURCE_SOURCE } from '../../src/cloud/endpoints-resource.ts';

function load(describeEndpoint: (type: string) => Promise<string>) {
  const responses: { url: string; method: string; body: Record<string, unknown> }[] = [];
  const https = {
    request(url: string, options: { method: string }, onResponse: (res: { resume(): void; on(e: string, f: () => void): void }) => void) {
      let body = '';
      return {
        on: () => {},
        end(chunk: string) {
          body += chunk;
          responses.push({ url, method: options.method, body: JSON.parse(body) });
          onResponse({ resume: () => {}, on: (_e, f) => f() });
        },
      };
    },
  };
  class DescribeEndpointCommand {
    constructor(readonly input: { endpointType: string }) {}
  }
  class IoTClient {
    send = async (command: DescribeEndpointCommand) => ({ endpointAddress: await describeEndpoint(command.input.endpointType) });
  }
  const modules: Record<string, unknown> = { https, '@aws-sdk/client-iot': { IoTClient, DescribeEndpointCommand } };
  const module = { exports: {} as { handler?: (event: unknown, context: unknown) => Promise<void> } };
  vm.runInNewContext(ENDPOINTS_RESOURCE_SOURCE, { module, exports: module.exports, require: (m: string) => modules[m], Buffer, console: { log: () => {} } });
  return { handler: module.exports.handler!, responses };
}

const event = (RequestType: string) => ({
  RequestType,
  ResponseURL: 'https://cloudformation-custom-resource-response.s3.amazonaws.com/x?sig=1',
  StackId: 'arn:aws:cloudformation:eu-west-1:123456789012:stack/fp-yocto/1',
  RequestId: 'r1',
  LogicalResourceId: 'Endpoints',
});
const context = { logStreamName: '2026/11/23/abc' };

describe('endpoints custom resource', () => {
  it('answers Create with both endpoints', async () => {
    const { handler, responses } = load(async (type) => (type === 'iot:Data-ATS' ? 'abc-ats.iot.eu-west-1.amazonaws.com' : 'abc.credentials.iot.eu-west-1.amazonaws.com'));
    await handler(event('Create'), context);
    expect(responses).toEqual([
      {
        url: event('Create').ResponseURL,
        method: 'PUT',
        body: {
          Status: 'SUCCESS',
          Reason: 'see CloudWatch log stream 2026/11/23/abc',
          PhysicalResourceId: 'iot-endpoints',
          StackId: event('Create').StackId,
          RequestId: 'r1',
          LogicalResourceId: 'Endpoints',
          Data: { DataEndpoint: 'abc-ats.iot.eu-west-1.amazonaws.com', CredentialEndpoint: 'abc.credentials.iot.eu-west-1.amazonaws.com' },
        },
      },
    ]);
  });

  it('answers FAILED with the reason instead of leaving the stack waiting', async () => {
    const { handler, responses } = load(async () => {
      throw new Error('User is not authorized to perform: iot:DescribeEndpoint');
    });
    await handler(event('Update'), context);
    expect(responses[0]!.body).toMatchObject({ Status: 'FAILED', Reason: 'User is not authorized to perform: iot:DescribeEndpoint' });
  });

  it('answers Delete without calling AWS IoT', async () => {
    let called = false;
    const { handler, responses } = load(async () => {
      called = true;
      return 'x';
    });
    await handler(event('Delete'), context);
    expect(called).toBe(false);
    expect(responses[0]!.body).toMatchObject({ Status: 'SUCCESS', Data: {} });
  });
});
