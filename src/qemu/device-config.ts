// config.yaml exactly as the layer's config recipe (fleetprovisioning-config.bb, fleetprov_config)
// writes it from the FLEETPROV_* values: the same fields from the layer model, the same constants,
// the same emitter (keys in order, values as JSON). The recipe's logic is Python inside bitbake;
// this is its TypeScript twin so the QEMU image gets the file a Yocto build would install.
import { CONFIG_CONSTANTS, CONFIG_FIELDS } from '../layer/model.ts';
import type { LocalConfName } from '../cloud/local-conf.ts';

type Node = { [k: string]: unknown };

/** Pure: the recipe's fleetprov_config for these variable values (unset ones take the field default). */
export function recipeConfigYaml(values: Partial<Record<LocalConfName, string>>): string {
  const doc: Node = {};
  for (const f of CONFIG_FIELDS) {
    const raw = (values[f.variable] ?? f.default ?? '').trim();
    if (!raw) {
      if (f.required) throw new Error(`${f.variable} is not set`);
      continue;
    }
    let value: unknown = raw;
    if (f.type === 'port') value = Number(raw);
    else if (f.type === 'flag') value = raw === '1';
    else if (f.type === 'json-map') value = JSON.parse(raw);
    else if (f.type === 'choice' && !f.choices?.includes(raw)) throw new Error(`${f.variable}: ${raw} is not one of ${f.choices?.join(', ')}`);
    let node = doc;
    for (const part of f.key.slice(0, -1)) node = (node[part] ??= {}) as Node;
    node[f.key[f.key.length - 1]!] = value;
  }
  doc.claimCertPath = CONFIG_CONSTANTS.claimCertPath;
  doc.claimKeyPath = CONFIG_CONSTANTS.claimKeyPath;
  doc.rootCaPath = CONFIG_CONSTANTS.rootCaPath;
  doc.outputDir = CONFIG_CONSTANTS.outputDir;
  const gg = (doc.greengrass ??= {}) as Node;
  gg.configDropIn = CONFIG_CONSTANTS.greengrass.configDropIn;
  gg.restartTarget = CONFIG_CONSTANTS.greengrass.restartTarget;

  const emit = (node: Node, indent: string): string[] =>
    Object.entries(node).flatMap(([k, v]) => {
      const name = /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? k : JSON.stringify(k);
      if (v && typeof v === 'object' && Object.keys(v).length) return [`${indent}${name}:`, ...emit(v as Node, `${indent}  `)];
      return [`${indent}${name}: ${JSON.stringify(v)}`];
    });
  return ['# Written by the fleetprovisioning-config recipe from the FLEETPROV_* variables.', ...emit(doc, '')].join('\n') + '\n';
}
