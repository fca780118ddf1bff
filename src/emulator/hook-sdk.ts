// What the pre-provisioning hook may `require` inside the emulator, as in Lambda's Node.js runtime
// ("Building Lambda functions with Node.js": the runtime includes the AWS SDK for JavaScript v3):
// node's crypto, and stand-ins for the two SDK clients the hook uses. They send the very commands
// the hook builds to the emulator's DynamoDB (over the registry) and to its certificate registry,
// with the SDK's shapes (`client.send(new XCommand(input))`) and exception names.
import crypto from 'node:crypto';
import { arn } from './arn.ts';
import type { DynamoDbOperation } from './control-plane.ts';
import type { DynamoDbService } from './dynamodb/service.ts';
import type { RegistryReader } from './registry.ts';

export interface HookSdkDeps {
  dynamodb: DynamoDbService;
  registry: Pick<RegistryReader, 'getCertificate'>;
}

type Command = { operation: string; input: Record<string, unknown> };

/** `new XCommand(input)`: the SDK's command objects, reduced to what the stand-ins need. */
const commandClass = (operation: string) =>
  class {
    readonly operation = operation;
    constructor(readonly input: Record<string, unknown> = {}) {}
  };

const DYNAMODB_COMMANDS: DynamoDbOperation[] = ['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'BatchGetItem', 'BatchWriteItem', 'Scan', 'DescribeTable'];

const notFound = (message: string) => Object.assign(new Error(message), { name: 'ResourceNotFoundException' });

/** The `require` of the hook's context. */
export function hookRequire(deps: HookSdkDeps): (name: string) => unknown {
  const dynamodb = {
    DynamoDBClient: class {
      constructor(readonly config: unknown = {}) {}
      send(command: Command) {
        return deps.dynamodb.call(command.operation as DynamoDbOperation, structuredClone(command.input));
      }
      destroy() {}
    },
    ...Object.fromEntries(DYNAMODB_COMMANDS.map((op) => [`${op}Command`, commandClass(op)])),
  };
  const iot = {
    IoTClient: class {
      constructor(readonly config: unknown = {}) {}
      async send(command: Command) {
        if (command.operation !== 'DescribeCertificate') throw new Error(`the emulator's hook SDK has no IoT ${command.operation}`);
        const id = String(command.input.certificateId ?? '');
        const cert = deps.registry.getCertificate(id);
        if (!cert) throw notFound(`certificate ${id} does not exist`);
        return {
          certificateDescription: {
            certificateId: cert.certificateId,
            certificateArn: arn.cert(cert.certificateId),
            status: cert.status,
            creationDate: new Date(cert.creationDate),
          },
        };
      }
      destroy() {}
    },
    DescribeCertificateCommand: commandClass('DescribeCertificate'),
  };
  const modules: Record<string, unknown> = { crypto, 'node:crypto': crypto, '@aws-sdk/client-dynamodb': dynamodb, '@aws-sdk/client-iot': iot };
  return (name: string) => {
    if (name in modules) return modules[name];
    throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
  };
}
