// The ControlPlane methods served over loopback. `satisfies` keeps the list complete: adding a
// method to ControlPlane without listing it here fails to compile.
import type { ControlPlane } from './control-plane.ts';

type Method = keyof ControlPlane;
type Missing = Exclude<Method, (typeof CONTROL_METHODS)[number]>;

export const CONTROL_METHODS = [
  'describeEndpoint',
  'getRootCa',
  'createPolicy',
  'updatePolicy',
  'getPolicy',
  'deletePolicy',
  'attachPolicy',
  'detachPolicy',
  'listAttachedPolicies',
  'createProvisioningTemplate',
  'updateProvisioningTemplate',
  'describeProvisioningTemplate',
  'deleteProvisioningTemplate',
  'createThingGroup',
  'deleteThingGroup',
  'listThingsInThingGroup',
  'describeThing',
  'listThings',
  'listThingPrincipals',
  'detachThingPrincipal',
  'deleteThing',
  'createCertificateFromCsr',
  'describeCertificate',
  'listCertificates',
  'updateCertificate',
  'deleteCertificate',
  'dynamoDb',
  'setFaults',
] as const satisfies readonly Method[];

// Compile-time completeness check: `Missing` must be never.
const complete: [Missing] extends [never] ? true : Missing = true;
void complete;

export function isControlMethod(name: string): name is Method {
  return (CONTROL_METHODS as readonly string[]).includes(name);
}
