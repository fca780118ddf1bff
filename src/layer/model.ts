// The one model the layer is rendered from: names, variables and what each recipe installs where.
// Device paths and unit names come from src/shared/device-paths.ts and the local.conf variable
// names from src/cloud/local-conf.ts, so the layer, the agent and `init` cannot drift apart.
import {
  AGENT_BIN,
  CLAIM_DIR,
  CLAIM_FILES,
  CONFIG_DIR,
  CONFIG_FILE,
  DEVICE_CLIENT_UNIT,
  GREENGRASS_DROP_IN,
  GREENGRASS_GROUP,
  GREENGRASS_TARGET,
  OUTPUT_DIR,
  RESULT_ACCESS,
  RESULT_FILES,
  UNITS,
} from '../shared/device-paths.ts';
import {
  CONFIG_DEFAULTS,
  DEVICE_ID_FORMATS,
  DEVICE_ID_SOURCES,
  GROUP_NAME_PATTERN,
  HANDOFFS,
  INTERFACE_NAME_PATTERN,
  KEY_STORES,
  TCTI_PATTERN,
  TPM_HANDLE_PATTERN,
} from '../shared/config.ts';
import { LOCAL_CONF_VARIABLES, type LocalConfName } from '../cloud/local-conf.ts';
import { UserError } from '../shared/errors.ts';
import { AGENT_FACTS_FILE, type AgentBundleFacts } from './agent-bundle.ts';
import { DEFAULT_TPM_TCTI, TCTI_SLOT, TPM_DROP_IN_NAME, TPM_GROUP, TPM_OPENSSL_CONF, tpmDropInTemplate, tpmOpensslConf } from './greengrass-tpm.ts';

export const LAYER_NAME = 'meta-fleetprovisioning';
/** BBFILE_COLLECTIONS name; LAYERDEPENDS of other layers use it. */
export const COLLECTION = 'fleetprovisioning';
export const LAYER_SERIES = ['scarthgap', 'wrynose'] as const;
export const LAYER_DEPENDS = ['core', 'openembedded-layer'] as const;
/** meta-aws's collection name: the Greengrass lite integration is active only with it. */
export const META_AWS_COLLECTION = 'meta-aws';
/**
 * meta-security's meta-tpm (its conf/layer.conf: BBFILE_COLLECTIONS += "tpm-layer"): with
 * FLEETPROV_KEY_STORE = "tpm" it provides what the device needs (tpm2-tools, tpm2-openssl, the
 * device TCTI of tpm2-tss).
 */
export const META_TPM = {
  collection: 'tpm-layer',
  dir: 'meta-tpm',
  packages: ['tpm2-tools', 'tpm2-openssl', 'libtss2-tcti-device', 'openssl-bin', 'tpm2-tss'],
  /** With FLEETPROV_TPM_TCTI = "tabrmd[:...]": the broker, dbus-activated (its recipe leaves the unit disabled). */
  abrmdPackages: ['tpm2-abrmd'],
} as const;

/**
 * Where meta-oe's nodejs recipe cannot be built, from its COMPATIBLE_MACHINE and COMPATIBLE_HOST
 * (nodejs_20.20.2.bb in scarthgap, nodejs_22.23.2.bb in wrynose): a TUNE_ARCH or a
 * MACHINEOVERRIDES entry, and the series where the rule holds (all when absent). The agent and the
 * packagegroup are skipped there, saying why, instead of failing on "Nothing RPROVIDES nodejs".
 */
export const NODEJS_UNSUPPORTED: readonly { name: string; series?: readonly (typeof LAYER_SERIES)[number][] }[] = [
  { name: 'armv4' },
  { name: 'armv5' },
  { name: 'mips64' },
  { name: 'powerpc' },
  { name: 'powerpc64le', series: ['wrynose'] },
  { name: 'riscv32' },
  { name: 'riscv64' },
];

/** The layer's class (classes-recipe/fleetprovisioning.bbclass): what every recipe inherits. */
export const CLASS_NAME = 'fleetprovisioning';

export const RECIPES = {
  agent: 'fleetprovisioning-agent',
  claim: 'fleetprovisioning-claim',
  config: 'fleetprovisioning-config',
  packagegroup: 'packagegroup-fleetprovisioning',
} as const;
export type RecipeKey = keyof typeof RECIPES;

/** The layer reads exactly the variables `init` writes (src/cloud/local-conf.ts). */
export type LayerVariableName = LocalConfName;

/** Every FLEETPROV_* variable with its one-line description, in the order the conf sample lists them. */
export const VARIABLES: Readonly<Record<LayerVariableName, string>> = LOCAL_CONF_VARIABLES;

/** Example values for conf/fleetprovisioning.conf.sample; `init` writes the real ones. */
export const SAMPLE_VALUES: Readonly<Record<LayerVariableName, string>> = {
  FLEETPROV_CLAIM_DIR: '/path/to/fleet/claim',
  FLEETPROV_AGENT_DIR: '/path/to/fp-yocto/dist',
  FLEETPROV_IOT_DATA_ENDPOINT: 'xxxxxxxxxxxxxx-ats.iot.eu-west-1.amazonaws.com',
  FLEETPROV_IOT_CRED_ENDPOINT: 'xxxxxxxxxxxxxx.credentials.iot.eu-west-1.amazonaws.com',
  FLEETPROV_PORT: String(CONFIG_DEFAULTS.port),
  FLEETPROV_AWS_REGION: 'eu-west-1',
  FLEETPROV_ROLE_ALIAS: 'fleetprov-token-exchange-role-alias',
  FLEETPROV_TEMPLATE_NAME: 'fleetprov-template',
  FLEETPROV_TEMPLATE_PARAMS: '{"DeviceId": "${deviceId}"}',
  FLEETPROV_CLIENT_ID_PREFIX: CONFIG_DEFAULTS.clientIdPrefix,
  FLEETPROV_DEVICE_ID_SOURCE: CONFIG_DEFAULTS.deviceId.source,
  FLEETPROV_DEVICE_ID_INTERFACE: '',
  FLEETPROV_DEVICE_ID_PATH: '',
  FLEETPROV_DEVICE_ID_FORMAT: CONFIG_DEFAULTS.deviceId.format,
  FLEETPROV_GREENGRASS: '0',
  FLEETPROV_GREENGRASS_GROUP: GREENGRASS_GROUP,
  FLEETPROV_KEY_STORE: CONFIG_DEFAULTS.key.store,
  FLEETPROV_TPM_HANDLE: '',
  FLEETPROV_TPM_TCTI: '',
  FLEETPROV_HANDOFF: '',
  FLEETPROV_PROXY_URL: '',
  FLEETPROV_PROXY_NO_PROXY: '',
};

/** How the config recipe turns one FLEETPROV_* variable into a key of config.yaml. */
export interface ConfigField {
  variable: LocalConfName;
  /** Path of the key in config.yaml (src/shared/config.ts). */
  key: readonly [string] | readonly [string, string];
  /** `path`: absolute; `interface`: a network interface name; `group`: a group name; as the agent's parser checks them. */
  type: 'string' | 'port' | 'json-map' | 'flag' | 'choice' | 'path' | 'interface' | 'group' | 'tpm-handle' | 'tcti' | 'proxy-url';
  /** Unset or empty: the recipe is skipped with a message naming the variable. */
  required: boolean;
  /** Required only while another variable has this value (the agent's cross-field rules). */
  requiredWhen?: { variable: LocalConfName; value: string };
  /** Read unexpanded, so that `${deviceId}` and any other `${` reach the agent as written. */
  literal?: boolean;
  choices?: readonly string[];
  /** Written when the variable is unset; omitted keys take the agent's defaults. */
  default?: string;
}

export const CONFIG_FIELDS: readonly ConfigField[] = [
  { variable: 'FLEETPROV_IOT_DATA_ENDPOINT', key: ['iotDataEndpoint'], type: 'string', required: true },
  { variable: 'FLEETPROV_IOT_CRED_ENDPOINT', key: ['iotCredEndpoint'], type: 'string', required: false },
  { variable: 'FLEETPROV_PORT', key: ['port'], type: 'port', required: false, default: String(CONFIG_DEFAULTS.port) },
  { variable: 'FLEETPROV_AWS_REGION', key: ['awsRegion'], type: 'string', required: false },
  { variable: 'FLEETPROV_ROLE_ALIAS', key: ['iotRoleAlias'], type: 'string', required: false },
  { variable: 'FLEETPROV_TEMPLATE_NAME', key: ['templateName'], type: 'string', required: true },
  { variable: 'FLEETPROV_TEMPLATE_PARAMS', key: ['templateParams'], type: 'json-map', required: false, literal: true, default: '{}' },
  {
    variable: 'FLEETPROV_CLIENT_ID_PREFIX',
    key: ['clientIdPrefix'],
    type: 'string',
    required: false,
    default: CONFIG_DEFAULTS.clientIdPrefix,
  },
  {
    variable: 'FLEETPROV_DEVICE_ID_SOURCE',
    key: ['deviceId', 'source'],
    type: 'choice',
    required: false,
    choices: DEVICE_ID_SOURCES,
    default: CONFIG_DEFAULTS.deviceId.source,
  },
  { variable: 'FLEETPROV_DEVICE_ID_INTERFACE', key: ['deviceId', 'interface'], type: 'interface', required: false },
  {
    variable: 'FLEETPROV_DEVICE_ID_PATH',
    key: ['deviceId', 'path'],
    type: 'path',
    required: false,
    requiredWhen: { variable: 'FLEETPROV_DEVICE_ID_SOURCE', value: 'file' },
  },
  { variable: 'FLEETPROV_DEVICE_ID_FORMAT', key: ['deviceId', 'format'], type: 'choice', required: false, choices: DEVICE_ID_FORMATS },
  { variable: 'FLEETPROV_GREENGRASS', key: ['greengrass', 'enabled'], type: 'flag', required: false, default: '0' },
  { variable: 'FLEETPROV_GREENGRASS_GROUP', key: ['greengrass', 'group'], type: 'group', required: false, default: GREENGRASS_GROUP },
  { variable: 'FLEETPROV_KEY_STORE', key: ['key', 'store'], type: 'choice', required: false, choices: KEY_STORES, default: CONFIG_DEFAULTS.key.store },
  { variable: 'FLEETPROV_TPM_HANDLE', key: ['key', 'tpmHandle'], type: 'tpm-handle', required: false },
  { variable: 'FLEETPROV_TPM_TCTI', key: ['key', 'tpmTcti'], type: 'tcti', required: false },
  { variable: 'FLEETPROV_HANDOFF', key: ['handoff'], type: 'choice', required: false, choices: HANDOFFS },
  // Never echoed in a message: it may hold a password.
  { variable: 'FLEETPROV_PROXY_URL', key: ['proxy', 'url'], type: 'proxy-url', required: false },
  { variable: 'FLEETPROV_PROXY_NO_PROXY', key: ['proxy', 'noProxy'], type: 'string', required: false },
];

/** The shape of a proxy URL the recipe accepts (src/shared/proxy-url.ts reads it on the device). */
export const PROXY_URL_PATTERN = String.raw`http://([^@/]*@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}/?`;

/** Keys of config.yaml the recipe writes as constants: the paths the other recipes install to. */
export const CONFIG_CONSTANTS = {
  claimCertPath: `${CLAIM_DIR}/${CLAIM_FILES.cert}`,
  claimKeyPath: `${CLAIM_DIR}/${CLAIM_FILES.key}`,
  rootCaPath: `${CLAIM_DIR}/${CLAIM_FILES.rootCa}`,
  outputDir: OUTPUT_DIR,
  greengrass: { configDropIn: GREENGRASS_DROP_IN, restartTarget: GREENGRASS_TARGET },
} as const;

/** Greengrass lite's units (meta-aws) that must start after provisioning has written its drop-in. */
export const GREENGRASS_UNITS_AFTER_PROVISIONING = [
  'ggl.core.ggconfigd.service',
  'ggl.core.iotcored.service',
  'ggl.core.tesd.service',
  'ggl.aws.greengrass.TokenExchangeService.service',
  GREENGRASS_TARGET,
] as const;

/**
 * Greengrass lite's units (meta-aws) whose services load system.privateKeyPath with OpenSSL: with a
 * TPM key they get the config recipe's drop-in (src/layer/greengrass-tpm.ts). iotcored (MQTT,
 * modules/iotcored/src/tls.c), tesd (credentials provider, through modules/ggl-http) and
 * ggdeploymentd (downloads, modules/ggdeploymentd/src/deployment_handler.c through ggl-http);
 * names from the modules' unit/*.service.in.
 */
export const GREENGRASS_UNITS_LOADING_KEY = ['ggl.core.iotcored.service', 'ggl.core.tesd.service', 'ggl.core.ggdeploymentd.service'] as const;

/**
 * The output directory as the agent keeps it (RESULT_ACCESS, its fixed contract): with Greengrass
 * lite root:<FLEETPROV_GREENGRASS_GROUP> 0750, so that its services reach the key, certificate and
 * CA; standalone root:root 0700.
 */
export const OUTPUT_DIR_MODES = { greengrass: RESULT_ACCESS.greengrass.dir.mode, standalone: RESULT_ACCESS.standalone.dir.mode } as const;

export const SYSTEMD_UNIT_DIR = '/usr/lib/systemd/system';

/** What the units run and when. */
export const UNIT_MODEL = {
  identify: {
    name: UNITS.identify,
    description: 'Fleet provisioning: read the device id (fp-agent identify)',
    execStart: `${AGENT_BIN} identify --config ${CONFIG_FILE}`,
    restartSec: '5s',
    restartSteps: 5,
    restartMaxDelaySec: '5min',
  },
  provision: {
    name: UNITS.provision,
    description: 'Fleet provisioning by claim for AWS IoT (fp-agent provision)',
    execStart: `${AGENT_BIN} provision --config ${CONFIG_FILE}`,
    restartSec: '10s',
    restartSteps: 10,
    restartMaxDelaySec: '1h',
  },
  /** Both are skipped once the agent has committed its result. */
  provisionedMarker: `${OUTPUT_DIR}/${RESULT_FILES.state}`,
  wantedBy: 'multi-user.target',
} as const;

export const PATHS = {
  agentBin: AGENT_BIN,
  configDir: CONFIG_DIR,
  configFile: CONFIG_FILE,
  claimDir: CLAIM_DIR,
  claimFiles: CLAIM_FILES,
  outputDir: OUTPUT_DIR,
  resultFiles: RESULT_FILES,
  unitDir: SYSTEMD_UNIT_DIR,
} as const;

/** Where each rendered file comes from: template (under recipes-templates/) → path in the layer. */
export interface LayerFile {
  template: string;
  path: string;
  /** Mode in git and on disk; every rendered file is 0644. */
}

const RECIPE_DIR = 'recipes-iot/fleetprovisioning';
const AGENT_FILES = `${RECIPE_DIR}/${RECIPES.agent}`;

export const LAYER_PATHS = {
  recipeDir: RECIPE_DIR,
  agentFilesDir: AGENT_FILES,
  unit: (key: keyof typeof UNITS): string => `${AGENT_FILES}/${UNITS[key]}`,
} as const;

export function layerFiles(version: string): LayerFile[] {
  const files: LayerFile[] = [
    { template: 'README.md.ejs', path: 'README.md' },
    { template: 'SECURITY.md.ejs', path: 'SECURITY.md' },
    { template: 'conf/layer.conf.ejs', path: 'conf/layer.conf' },
    { template: 'classes-recipe/fleetprovisioning.bbclass.ejs', path: `classes-recipe/${CLASS_NAME}.bbclass` },
    { template: 'conf/fleetprovisioning.conf.sample.ejs', path: 'conf/fleetprovisioning.conf.sample' },
    { template: 'kas/fleetprovisioning.yml.ejs', path: 'kas/fleetprovisioning.yml' },
    { template: `${RECIPE_DIR}/agent.bb.ejs`, path: `${RECIPE_DIR}/${RECIPES.agent}_${version}.bb` },
    { template: `${RECIPE_DIR}/claim.bb.ejs`, path: `${RECIPE_DIR}/${RECIPES.claim}.bb` },
    { template: `${RECIPE_DIR}/config.bb.ejs`, path: `${RECIPE_DIR}/${RECIPES.config}.bb` },
    { template: `${RECIPE_DIR}/identify.service.ejs`, path: LAYER_PATHS.unit('identify') },
    { template: `${RECIPE_DIR}/provision.service.ejs`, path: LAYER_PATHS.unit('provision') },
    { template: 'recipes-iot/packagegroups/packagegroup.bb.ejs', path: `recipes-iot/packagegroups/${RECIPES.packagegroup}.bb` },
    {
      template: 'dynamic-layers/meta-aws/greengrass-lite.bbappend.ejs',
      path: 'dynamic-layers/meta-aws/recipes-iot/aws-iot-greengrass/greengrass-lite_%.bbappend',
    },
    {
      template: 'dynamic-layers/meta-tpm/packagegroup.bbappend.ejs',
      path: `dynamic-layers/${META_TPM.dir}/recipes-iot/packagegroups/${RECIPES.packagegroup}.bbappend`,
    },
    {
      template: 'dynamic-layers/meta-aws/aws-iot-device-client.bbappend.ejs',
      path: 'dynamic-layers/meta-aws/recipes-iot/aws-iot-device-client/aws-iot-device-client_%.bbappend',
    },
    {
      template: 'dynamic-layers/meta-aws/packagegroup.bbappend.ejs',
      path: `dynamic-layers/meta-aws/recipes-iot/packagegroups/${RECIPES.packagegroup}.bbappend`,
    },
    { template: 'lib/oeqa/runtime/cases/fleetprovisioning.py.ejs', path: 'lib/oeqa/runtime/cases/fleetprovisioning.py' },
  ];
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * The parse-time checks of the class, by the name a recipe lists in FLEETPROV_CHECKS, with the
 * recipe that needs it: the packagegroup runs the checks of all its members.
 */
export const RECIPE_CHECKS = {
  nodejs: RECIPES.agent,
  agent: RECIPES.agent,
  claim: RECIPES.claim,
  config: RECIPES.config,
  tpm: RECIPES.config,
} as const;

/** Everything the templates see. */
export interface LayerModel {
  version: string;
  /** dist/fp-agent.json: the bundle's version, licence and licence texts. */
  agent: AgentBundleFacts;
  agentFactsFile: typeof AGENT_FACTS_FILE;
  className: typeof CLASS_NAME;
  checks: typeof RECIPE_CHECKS;
  nodejsUnsupported: typeof NODEJS_UNSUPPORTED;
  groupNamePattern: string;
  proxyUrlPattern: string;
  /** The output directory's mode per setting, as do_install writes it (`0750`). */
  outputDir: { greengrass: { mode: string }; standalone: { mode: string } };
  layerName: typeof LAYER_NAME;
  collection: typeof COLLECTION;
  series: typeof LAYER_SERIES;
  depends: typeof LAYER_DEPENDS;
  metaAws: typeof META_AWS_COLLECTION;
  metaTpm: typeof META_TPM;
  /** The agent's check of key.tpmHandle's text, for the recipe's own. */
  tpmHandlePattern: string;
  /** The agent's check of key.tpmTcti, for the recipe's own. */
  tctiPattern: string;
  recipes: typeof RECIPES;
  variables: typeof VARIABLES;
  sampleValues: typeof SAMPLE_VALUES;
  configFields: typeof CONFIG_FIELDS;
  configConstants: typeof CONFIG_CONSTANTS;
  /** The agent's check of deviceId.interface, for the recipe's own (a Python raw string). */
  interfaceNamePattern: string;
  units: typeof UNIT_MODEL;
  greengrassUnits: typeof GREENGRASS_UNITS_AFTER_PROVISIONING;
  /** What the config recipe installs for a TPM key with Greengrass (src/layer/greengrass-tpm.ts). */
  greengrassTpm: {
    units: typeof GREENGRASS_UNITS_LOADING_KEY;
    opensslConf: { path: string; text: string };
    dropIn: { name: string; template: string; slot: string };
    defaultTcti: string;
    group: string;
  };
  deviceClientUnit: typeof DEVICE_CLIENT_UNIT;
  paths: typeof PATHS;
  layerPaths: typeof LAYER_PATHS;
  maintainer: { name: string; email: string };
}

/** A mode as install(1) takes it: 0750. */
export const octal = (mode: number): string => mode.toString(8).padStart(4, '0');

export function layerModel(version: string, agent: AgentBundleFacts): LayerModel {
  if (!/^\d+\.\d+\.\d+([.+~-][0-9A-Za-z.+~-]+)?$/.test(version)) {
    throw new Error(`package.json: version: expected a version such as 1.2.3, got ${JSON.stringify(version)}`);
  }
  // PV is the agent's version: a layer rendered for another bundle would misname it.
  if (agent.version !== version) {
    throw new UserError(`dist/${AGENT_FACTS_FILE} is for fp-agent ${agent.version}, not ${version}: run \`npm run build\``);
  }
  return {
    version,
    agent,
    agentFactsFile: AGENT_FACTS_FILE,
    className: CLASS_NAME,
    checks: RECIPE_CHECKS,
    nodejsUnsupported: NODEJS_UNSUPPORTED,
    groupNamePattern: GROUP_NAME_PATTERN,
    proxyUrlPattern: PROXY_URL_PATTERN,
    outputDir: {
      greengrass: { mode: octal(OUTPUT_DIR_MODES.greengrass) },
      standalone: { mode: octal(OUTPUT_DIR_MODES.standalone) },
    },
    layerName: LAYER_NAME,
    collection: COLLECTION,
    series: LAYER_SERIES,
    depends: LAYER_DEPENDS,
    metaAws: META_AWS_COLLECTION,
    metaTpm: META_TPM,
    tpmHandlePattern: TPM_HANDLE_PATTERN,
    tctiPattern: TCTI_PATTERN,
    recipes: RECIPES,
    variables: VARIABLES,
    sampleValues: SAMPLE_VALUES,
    configFields: CONFIG_FIELDS,
    configConstants: CONFIG_CONSTANTS,
    interfaceNamePattern: INTERFACE_NAME_PATTERN,
    units: UNIT_MODEL,
    greengrassUnits: GREENGRASS_UNITS_AFTER_PROVISIONING,
    greengrassTpm: {
      units: GREENGRASS_UNITS_LOADING_KEY,
      opensslConf: { path: TPM_OPENSSL_CONF, text: tpmOpensslConf() },
      dropIn: { name: TPM_DROP_IN_NAME, template: tpmDropInTemplate(), slot: TCTI_SLOT },
      defaultTcti: DEFAULT_TPM_TCTI,
      group: TPM_GROUP,
    },
    deviceClientUnit: DEVICE_CLIENT_UNIT,
    paths: PATHS,
    layerPaths: LAYER_PATHS,
    maintainer: { name: 'fp-yocto maintainers', email: 'fp-yocto-maintainers@example.com' },
  };
}
