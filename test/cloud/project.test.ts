import { createVerify, X509Certificate } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { describe, expect, it } from 'vitest';
import { certificateMatchesKey, makeClaimKey } from '../../src/cloud/claim.ts';
import { LOCAL_CONF_VARIABLES, renderLocalConfSample, type LocalConfValues } from '../../src/cloud/local-conf.ts';
import { ensureGitignore, projectPaths, removeClaimFiles, writeClaimFiles } from '../../src/cloud/project.ts';
import { createCa, CertificateAuthority } from '../../src/emulator/ca.ts';
import { tmpDir } from '../helpers/tmp.ts';

describe('claim key and CSR', () => {
  it('makes an EC P-256 key and a CSR signed by it, and a CA-issued certificate matches the key', () => {
    const { keyPem, csrPem } = makeClaimKey('fp-yocto-claim');
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const csr = AsnConvert.parse(der, CertificationRequest);
    const info = Buffer.from(AsnConvert.serialize(csr.certificationRequestInfo));
    const spki = Buffer.from(AsnConvert.serialize(csr.certificationRequestInfo.subjectPKInfo));
    const verify = createVerify('sha256').update(info);
    expect(verify.verify({ key: spki, format: 'der', type: 'spki' }, Buffer.from(csr.signature))).toBe(true);

    const ca = new CertificateAuthority(createCa());
    const certPem = ca.issueFromCsr(csrPem, new Date());
    expect(new X509Certificate(certPem).publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(certificateMatchesKey(certPem, keyPem)).toBe(true);
    expect(certificateMatchesKey(certPem, makeClaimKey('other').keyPem)).toBe(false);
  });
});

describe('project files', () => {
  it('writes the claim key 0600 from the start and the rest readable, and removes only its own files', async () => {
    const paths = projectPaths(await tmpDir());
    await writeClaimFiles(paths, { certPem: 'CERT', keyPem: 'KEY', rootCaPem: 'CA' });
    expect((await stat(paths.claimKey)).mode & 0o777).toBe(0o600);
    expect((await stat(paths.claimCert)).mode & 0o777).toBe(0o644);
    expect(await readFile(paths.rootCa, 'utf8')).toBe('CA');
    await writeFile(`${paths.claimDir}/README`, 'mine');
    await removeClaimFiles(paths);
    expect(await readFile(`${paths.claimDir}/README`, 'utf8')).toBe('mine');
    await expect(stat(paths.claimKey)).rejects.toThrow();
  });

  it('adds claim/ and .fp-yocto/ to .gitignore once, keeping what was there', async () => {
    const paths = projectPaths(await tmpDir());
    await mkdir(paths.dir, { recursive: true });
    await writeFile(paths.gitignore, 'build/');
    expect(await ensureGitignore(paths)).toBe(true);
    expect(await ensureGitignore(paths)).toBe(false);
    const text = await readFile(paths.gitignore, 'utf8');
    expect(text.split('\n').filter((l) => !l.startsWith('#'))).toEqual(['build/', 'claim/', '.fp-yocto/', '']);
  });

  it('renders every FLEETPROV_* variable and INIT_MANAGER for local.conf', () => {
    const values = Object.fromEntries(Object.keys(LOCAL_CONF_VARIABLES).map((k) => [k, `v-${k}`])) as LocalConfValues;
    values.FLEETPROV_TEMPLATE_PARAMS = '{"DeviceId":"${deviceId}"}';
    const text = renderLocalConfSample(values, 'test');
    expect(text).toContain('INIT_MANAGER = "systemd"');
    for (const name of Object.keys(LOCAL_CONF_VARIABLES)) expect(text).toMatch(new RegExp(`^${name} = `, 'm'));
    expect(text).toContain(`FLEETPROV_TEMPLATE_PARAMS = '{"DeviceId":"\${deviceId}"}'`);
    expect(text).toContain('FLEETPROV_CLAIM_DIR = "v-FLEETPROV_CLAIM_DIR"');
  });
});
