import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, PutBucketVersioningCommand, S3Client } from '@aws-sdk/client-s3';
import { inject } from 'vitest';
import { TEST_CREDENTIALS } from '../../devkit/moto';

export interface TestBucket {
  endpoint: string;
  bucket: string;
  client: S3Client;
  /** Environment for a spawned process (the CLI) to use this bucket's server. */
  env: Record<string, string>;
}

/** A new bucket on the run's moto server (see global-setup), plain or versioned. */
export async function testBucket(options: { versioned?: boolean } = {}): Promise<TestBucket> {
  const endpoint = inject('motoEndpoint');
  const bucket = `loyalty-${randomBytes(6).toString('hex')}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: TEST_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  if (options.versioned) await client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  return {
    endpoint,
    bucket,
    client,
    env: { AWS_ENDPOINT_URL_S3: endpoint, AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' },
  };
}
