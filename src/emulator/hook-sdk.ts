// The emulator's side of the hook's AWS SDK calls. The hook runs in a worker (hook-runner.ts),
// where `require('@aws-sdk/client-dynamodb')` and `require('@aws-sdk/client-iot')` give clients
// whose send() posts the command here, as in Lambda's Node.js runtime, which includes the AWS SDK
// for JavaScript v3 ("Building Lambda functions with Node.js"). DynamoDB commands go to the
// emulator's DynamoDB (the stack's device table, in the registry); DescribeCertificate to its
// certificates. Answers and exceptions have the SDK's shapes and names.
import { arn } from './arn.ts';
import type { DynamoDbOperation } from './control-plane.ts';
import type { DynamoDbService } from './dynamodb/service.ts';
import type { HookSdk } from './hook-runner.ts';
import type { RegistryReader } from './registry.ts';

export interface HookSdkDeps {
  dynamodb: DynamoDbService;
  registry: Pick<RegistryReader, 'getCertificate'>;
}

/** The data operations a hook may send to DynamoDB (no table management). */
const HOOK_DYNAMODB: readonly DynamoDbOperation[] = ['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'BatchGetItem', 'BatchWriteItem', 'Scan'];

const fail = (name: string, message: string) => Promise.reject(Object.assign(new Error(message), { name }));

export function hookSdk(deps: HookSdkDeps): HookSdk {
  return async (service, operation, input) => {
    if (service === 'dynamodb') {
      if (!HOOK_DYNAMODB.includes(operation as DynamoDbOperation)) return fail('UnknownOperationException', `the emulator's DynamoDB has no ${operation} for hooks`);
      return deps.dynamodb.call(operation as DynamoDbOperation, input);
    }
    if (operation !== 'DescribeCertificate') return fail('UnknownOperationException', `the emulator's hook SDK has no IoT ${operation}`);
    const id = String(input.certificateId ?? '');
    const cert = deps.registry.getCertificate(id);
    if (!cert) return fail('ResourceNotFoundException', `certificate ${id} does not exist`);
    return {
      certificateDescription: {
        certificateId: cert.certificateId,
        certificateArn: arn.cert(cert.certificateId),
        status: cert.status,
        creationDate: new Date(cert.creationDate),
      },
    };
  };
}
