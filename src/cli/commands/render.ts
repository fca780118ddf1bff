import { defineCommand } from 'citty';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../shared/errors.ts';
import { LAYER_NAME } from '../../layer/model.ts';
import { checkLayer, describeDiff, layerDirIn, updateLayer } from '../../layer/update-layer.ts';
import { isClean } from '../../layer/write-layer.ts';

export default defineCommand({
  meta: {
    name: 'render',
    description: `Write the Yocto layer ${LAYER_NAME} into <dir>/${LAYER_NAME} from fp-yocto's templates.

The layer is generated: edit recipes-templates/, never the rendered files. Rendering is
byte-stable, so the rendered layer can be committed and checked in CI:

  fp-yocto render                  update ./${LAYER_NAME}
  fp-yocto render --dir ../layers  write ../layers/${LAYER_NAME}
  fp-yocto render --check          exit 1, listing the files a render would change

Site values (endpoints, template, claim and agent directories) are not in the layer: they go in
conf/fleetprovisioning.conf, which \`fp-yocto init\` writes (see the layer's conf/*.sample).`,
  },
  args: {
    dir: { type: 'string', description: `directory that holds (or will hold) ${LAYER_NAME}`, default: '.' },
    check: { type: 'boolean', description: 'change nothing; exit 1 if the layer differs from a fresh render', default: false },
  },
  async run({ args }) {
    const parent = path.resolve(args.dir);
    const info = await stat(parent).catch(() => undefined);
    if (!info?.isDirectory()) throw new UserError(`--dir ${args.dir}: expected an existing directory`);
    const shown = path.relative(process.cwd(), layerDirIn(parent)) || '.';

    if (args.check) {
      const { diff, files } = await checkLayer(parent);
      if (isClean(diff)) {
        console.log(`${shown}: up to date (${files} files)`);
        return;
      }
      console.error(`${shown} differs from a fresh render; run \`fp-yocto render\` and commit the result:`);
      for (const line of describeDiff(diff)) console.error(`  ${line}`);
      process.exitCode = 1;
      return;
    }

    const changes = describeDiff(await updateLayer(parent));
    console.log(changes.length === 0 ? `${shown}: already up to date` : `${shown}: ${changes.length} file(s) updated`);
    for (const line of changes) console.log(`  ${line}`);
  },
});
