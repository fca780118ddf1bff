// The OpenSSL configuration the config recipe gives Greengrass lite's services with a TPM key
// (src/layer/greengrass-tpm.ts), tried on this host against a software TPM: with only
// OPENSSL_CONF (that file) and TPM2OPENSSL_TCTI in the environment, as the drop-ins give them,
// OpenSSL's store resolves `handle:0x81000002` to the TPM key, which is what iotcored's
// OSSL_STORE_open(privateKeyPath, NULL, ...) in the default library context needs
// (aws-greengrass-lite modules/iotcored/src/tls.c). Without the file it does not.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { tpmOpensslConf } from '../../src/layer/greengrass-tpm.ts';
import { startSoftwareTpm, softwareTpmAvailable } from '../helpers/swtpm.ts';
import { tmpDir } from '../helpers/tmp.ts';

const HANDLE = 0x81000002;

describe.skipIf(!softwareTpmAvailable())("Greengrass lite's OpenSSL configuration for a TPM key", () => {
  it('makes `openssl pkey -in handle:0x81000002` load the TPM key with no -provider flag, and nothing else does', async () => {
    // Behind tpm2-abrmd (tabrmd TCTI), standing in for a device's /dev/tpmrm0.
    const tpm = await startSoftwareTpm();
    const dir = await tmpDir('fp-gg-openssl-');
    await tpm.tool('tpm2_createprimary', ['-Q', '-C', 'o', '-G', 'ecc256:aes128cfb', '-c', path.join(dir, 'p.ctx')]);
    await tpm.tool('tpm2_create', ['-Q', '-C', path.join(dir, 'p.ctx'), '-G', 'ecc256', '-c', path.join(dir, 'k.ctx')]);
    await tpm.tool('tpm2_evictcontrol', ['-Q', '-C', 'o', '-c', path.join(dir, 'k.ctx'), `0x${HANDLE.toString(16)}`]);
    const publicKey = await tpm.publicKeyPem(HANDLE);

    const conf = path.join(dir, 'openssl-tpm2.cnf');
    await writeFile(conf, tpmOpensslConf());
    // The environment the drop-in gives the service, with PATH to find openssl and the broker's
    // session bus: nothing more.
    const openssl = (env: Record<string, string>) =>
      execa('openssl', ['pkey', '-in', `handle:0x${HANDLE.toString(16)}`, '-pubout'], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...tpm.env, TPM2OPENSSL_TCTI: tpm.tcti, ...env },
        extendEnv: false,
        reject: false,
      });

    const loaded = await openssl({ OPENSSL_CONF: conf });
    expect(loaded.exitCode, loaded.stderr).toBe(0);
    expect(loaded.stdout.trim()).toBe(publicKey.trim());
    expect(loaded.stdout).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);

    // The host's own openssl.cnf does not activate the tpm2 provider: the handle: URI is unknown.
    const without = await openssl({});
    expect(without.exitCode).not.toBe(0);
    expect(without.stdout).not.toContain('BEGIN PUBLIC KEY');
  });
});
