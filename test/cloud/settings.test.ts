import { describe, expect, it } from 'vitest';
import { partition } from '@aws-sdk/core/client';
import { checkPort, checkRegion, checkStackName, parseArtifactBuckets, parseDeviceIdSource, parseDuration, parseThingAttributes } from '../../src/cloud/settings.ts';

describe('flag checks', () => {
  it('checks --device-id-source and --thing-attributes', () => {
    expect(parseDeviceIdSource('dmi-serial')).toBe('dmi-serial');
    expect(() => parseDeviceIdSource('serial')).toThrow('--device-id-source "serial": expected mac, machine-id, device-tree-serial, dmi-serial, file');
    expect(parseThingAttributes('model, batch,model')).toEqual(['model', 'batch']);
    expect(() => parseThingAttributes('a,b,c')).toThrow('--thing-attributes "a,b,c": expected at most two names');
    expect(() => parseThingAttributes('deviceId')).toThrow('--thing-attributes "deviceId": expected names of letters');
    expect(() => parseThingAttributes('my-attr')).toThrow('--thing-attributes "my-attr"');
  });

  it('parses durations', () => {
    expect(parseDuration('0')).toBe(0);
    expect(parseDuration('30m')).toBe(1_800_000);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(() => parseDuration('24')).toThrow('--grace "24": expected a unit');
    expect(() => parseDuration('soon')).toThrow('--grace "soon": expected a duration such as 0, 30m, 24h or 7d');
  });

  it('checks stack names, regions and ports', () => {
    expect(checkStackName('fp-yocto')).toBe('fp-yocto');
    expect(() => checkStackName('1abc')).toThrow('--stack-name "1abc": expected a letter');
    expect(() => checkStackName('a'.repeat(24))).toThrow('--stack-name');
    expect(checkRegion('ap-southeast-2')).toBe('ap-southeast-2');
    expect(() => checkRegion('Europe')).toThrow('--region "Europe": expected an AWS region');
  });

  it.each([
    ['eu-west-1', 'aws'],
    ['ap-southeast-7', 'aws'],
    ['cn-north-1', 'aws-cn'],
    ['us-gov-west-1', 'aws-us-gov'],
    ['us-iso-east-1', 'aws-iso'],
    ['us-isob-east-1', 'aws-iso-b'],
    ['eu-isoe-west-1', 'aws-iso-e'],
    ['us-isof-south-1', 'aws-iso-f'],
    ['eusc-de-east-1', 'aws-eusc'],
  ])('accepts %s, a region of partition %s as the AWS SDK knows it (issue 12, defect 9)', (region, expected) => {
    expect(partition(region).name).toBe(expected);
    expect(checkRegion(region)).toBe(region);
  });

  it.each(['eu-west', 'EU-WEST-1', 'eu_west_1', 'europe-west-1x'])('refuses %s', (region) => {
    expect(() => checkRegion(region)).toThrow(`--region "${region}": expected an AWS region such as eu-west-1`);
  });

  it('parses artifact buckets and names a bad one', () => {
    expect(parseArtifactBuckets('b-two, a.one,b-two')).toEqual(['a.one', 'b-two']);
    expect(() => parseArtifactBuckets('ok-bucket,Bad_Bucket')).toThrow('--artifact-bucket "Bad_Bucket": expected S3 bucket names');
    expect(checkPort('0')).toBe(0);
    expect(() => checkPort('99999')).toThrow('--port "99999"');
  });
});
