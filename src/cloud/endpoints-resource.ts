// A tiny custom resource that puts the account's AWS IoT endpoints into the stack outputs:
// CloudFormation has no attribute for them. Inline Lambda code (CommonJS); the Node.js runtime
// ships the AWS SDK v3. It always answers CloudFormation, or a failure would hang the stack for
// an hour.

export const ENDPOINTS_RESOURCE_SOURCE = `'use strict';
// fp-yocto: reports the AWS IoT data and credentials endpoints as custom resource attributes.
const https = require('https');
const { IoTClient, DescribeEndpointCommand } = require('@aws-sdk/client-iot');

function respond(event, context, status, data, reason) {
  const body = JSON.stringify({
    Status: status,
    Reason: reason || 'see CloudWatch log stream ' + context.logStreamName,
    PhysicalResourceId: event.PhysicalResourceId || 'iot-endpoints',
    StackId: event.StackId,
    RequestId: event.RequestId,
    LogicalResourceId: event.LogicalResourceId,
    Data: data || {},
  });
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': '', 'content-length': Buffer.byteLength(body) };
    const req = https.request(event.ResponseURL, { method: 'PUT', headers }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end(body);
  });
}

exports.handler = async (event, context) => {
  try {
    if (event.RequestType === 'Delete') return await respond(event, context, 'SUCCESS');
    const iot = new IoTClient({});
    const address = async (type) => (await iot.send(new DescribeEndpointCommand({ endpointType: type }))).endpointAddress;
    const data = { DataEndpoint: await address('iot:Data-ATS'), CredentialEndpoint: await address('iot:CredentialProvider') };
    await respond(event, context, 'SUCCESS', data);
  } catch (error) {
    console.log(error);
    await respond(event, context, 'FAILED', {}, String((error && error.message) || error).slice(0, 200));
  }
};
`;
