// Control-plane errors carry AWS's exception names, so callers can branch on `error.name` the
// same way for the emulator and for the AWS SDK.
export type AwsErrorName =
  | 'ResourceNotFoundException'
  | 'ResourceAlreadyExistsException'
  | 'InvalidRequestException'
  | 'DeleteConflictException'
  | 'CertificateStateException'
  | 'MalformedPolicyException'
  | 'UnauthorizedException';

export class AwsError extends Error {
  constructor(
    override readonly name: AwsErrorName,
    message: string,
  ) {
    super(message);
  }
}
