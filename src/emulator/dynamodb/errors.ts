// DynamoDB's exceptions, by the names the AWS SDK gives them, so callers (the hook, the device
// store) branch on `error.name` alike for AWS and the emulator.
export type DynamoDbErrorName =
  | 'ValidationException'
  | 'ResourceNotFoundException'
  | 'ResourceInUseException'
  | 'ConditionalCheckFailedException';

export class DynamoDbError extends Error {
  constructor(
    override readonly name: DynamoDbErrorName,
    message: string,
    /** ConditionalCheckFailedException with ReturnValuesOnConditionCheckFailure ALL_OLD: the item. */
    readonly Item?: Record<string, Record<string, unknown>>,
  ) {
    super(message);
  }
}
