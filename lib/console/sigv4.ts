import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, Checksum, SourceData } from '@smithy/types';

/** SHA-256 (or its HMAC with a key) in the shape the SigV4 signer wants, from node:crypto. */
class NodeSha256 implements Checksum {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: SourceData): void {
    this.hash.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    throw new Error('not supported');
  }
}

function toBuffer(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data as ArrayBuffer);
}

/** The region of an API Gateway or Lambda function URL host, e.g. `abc.execute-api.eu-west-1.amazonaws.com`. */
export function regionOfApiUrl(url: URL): string | null {
  return /\.(?:execute-api|lambda-url)\.([a-z]{2}(?:-[a-z]+)+-\d)\.(?:on\.aws|amazonaws\.com)$/.exec(url.hostname)?.[1] ?? null;
}

/**
 * Signs requests to a deployed, IAM-protected API with the operator's credentials (the console's
 * proxy), as `execute-api` (API Gateway) or `lambda` (a function URL).
 */
export function apiSigner(options: { region: string; service: 'execute-api' | 'lambda'; credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider }) {
  const signer = new SignatureV4({ service: options.service, region: options.region, credentials: options.credentials, sha256: NodeSha256 });
  return async (request: { method: string; url: URL; headers: Record<string, string>; body: Buffer }): Promise<Record<string, string>> => {
    const signed = await signer.sign({
      method: request.method,
      protocol: request.url.protocol,
      hostname: request.url.hostname,
      port: request.url.port ? Number(request.url.port) : undefined,
      path: request.url.pathname,
      query: Object.fromEntries(request.url.searchParams),
      headers: { ...request.headers, 'x-amz-content-sha256': createHash('sha256').update(request.body).digest('hex') },
      body: request.body.length ? request.body : undefined,
    });
    return signed.headers;
  };
}
