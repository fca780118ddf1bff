// What the layer knows about the fp-agent bundle it packages: its version and the licences of
// the code inside it. `npm run build` writes dist/fp-agent.json and dist/fp-agent.licenses/ from
// the bundle's real inputs (scripts/licenses.ts); the agent recipe's PV, LICENSE and
// LIC_FILES_CHKSUM are rendered from that file, and its parse-time check compares the bundle in
// FLEETPROV_AGENT_DIR with what the layer was rendered for.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../shared/errors.ts';

/** Beside the bundle: its facts, and the licence texts of everything bundled into it. */
export const AGENT_FACTS_FILE = 'fp-agent.json';
export const AGENT_LICENSE_DIR = 'fp-agent.licenses';

/**
 * The licences the bundle may contain, by SPDX id, which is also the name of the text in
 * openembedded-core's meta/files/common-licenses (the LICENSE names a recipe may use). A
 * dependency under any other licence fails the build until someone has reviewed it and added
 * it here.
 */
export const ACCEPTED_LICENSES = ['0BSD', 'Apache-2.0', 'BSD-2-Clause', 'BSD-3-Clause', 'ISC', 'MIT'] as const;

/**
 * fp-yocto's own code carries no licence file of its own: its licence text is
 * openembedded-core's common one. md5 of meta/files/common-licenses/Apache-2.0 (the same in
 * scarthgap and wrynose).
 */
export const COMMON_LICENSE_MD5: Readonly<Record<string, string>> = { 'Apache-2.0': '89aea4e17d99a7cacdbeed46a0096b10' };

export interface LicenseText {
  /** The bundled package this text belongs to (`fp-yocto` for the project's own code). */
  package: string;
  /** Inside FLEETPROV_AGENT_DIR (`fp-agent.licenses/<package>/<file>`), or `${COMMON_LICENSE_DIR}/<id>`. */
  path: string;
  md5: string;
}

export interface AgentBundleFacts {
  version: string;
  /** The recipe's LICENSE: every licence in the bundle, as openembedded-core writes expressions. */
  license: string;
  /** One row per bundled package: name, version and licence expression, for people and SBOMs. */
  packages: { name: string; version: string; license: string }[];
  /** Every licence text, sorted by path: the recipe's LIC_FILES_CHKSUM. */
  licenseTexts: LicenseText[];
}

const SPDX_TOKEN = /\s*(\(|\)|[A-Za-z0-9.+-]+)\s*/y;

/**
 * An npm `license` value (an SPDX expression) as an openembedded-core LICENSE expression:
 * `(MIT OR Apache-2.0)` → `MIT | Apache-2.0`, `A AND B` → `A & B`. Throws naming the licence
 * that is not in ACCEPTED_LICENSES.
 */
export function spdxToOe(expression: string): string {
  const out: string[] = [];
  SPDX_TOKEN.lastIndex = 0;
  while (SPDX_TOKEN.lastIndex < expression.length) {
    const m = SPDX_TOKEN.exec(expression);
    if (!m) throw new Error(`cannot read the licence expression ${JSON.stringify(expression)}`);
    const token = m[1]!;
    if (token === 'OR') out.push('|');
    else if (token === 'AND') out.push('&');
    else if (token === '(' || token === ')') out.push(token);
    else if ((ACCEPTED_LICENSES as readonly string[]).includes(token)) out.push(token);
    else throw new Error(`licence ${JSON.stringify(token)} is not one the agent bundle may contain (accepted: ${ACCEPTED_LICENSES.join(', ')})`);
  }
  if (out.length === 0) throw new Error('empty licence expression');
  const text = out.join(' ').replace(/\( /g, '(').replace(/ \)/g, ')');
  // An expression wrapped whole in one pair of parentheses reads better without them.
  return text.startsWith('(') && closingParen(text, 0) === text.length - 1 ? text.slice(1, -1) : text;
}

/** The index of the parenthesis closing the one at `open`. */
function closingParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return i;
  }
  return -1;
}

/** The licences named in OE expressions, sorted and joined with ` & ` (every one applies somewhere). */
export function combinedLicense(expressions: readonly string[]): string {
  const names = new Set(expressions.flatMap((e) => e.split(/[\s()&|]+/).filter(Boolean)));
  return [...names].sort().join(' & ');
}

const isString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/** Checks the shape of dist/fp-agent.json; one error line naming the file and the field. */
export function parseAgentFacts(text: string, file: string): AgentBundleFacts {
  const bad = (field: string, expected: string): never => {
    throw new UserError(`${file}: ${field}: expected ${expected} (rebuild it with \`npm run build\`)`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return bad('(file)', 'JSON');
  }
  const o = doc as Record<string, unknown>;
  if (typeof doc !== 'object' || doc === null) return bad('(file)', 'a JSON object');
  if (!isString(o.version)) bad('version', 'a version');
  if (!isString(o.license)) bad('license', 'a licence expression');
  if (!Array.isArray(o.packages) || !o.packages.every((p) => isString(p?.name) && isString(p?.version) && isString(p?.license))) {
    bad('packages', 'a list of {name, version, license}');
  }
  if (
    !Array.isArray(o.licenseTexts) ||
    o.licenseTexts.length === 0 ||
    !o.licenseTexts.every((t) => isString(t?.package) && isString(t?.path) && /^[0-9a-f]{32}$/.test(String(t?.md5)))
  ) {
    bad('licenseTexts', 'a list of {package, path, md5}');
  }
  return o as unknown as AgentBundleFacts;
}

/** dist/fp-agent.json of a built fp-yocto. */
export async function readAgentFacts(distDir: string): Promise<AgentBundleFacts> {
  const file = path.join(distDir, AGENT_FACTS_FILE);
  const text = await readFile(file, 'utf8').catch(() => {
    throw new UserError(`${file} is missing: run \`npm run build\` (it writes the agent bundle's version and licences)`);
  });
  return parseAgentFacts(text, file);
}
