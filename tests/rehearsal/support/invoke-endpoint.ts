import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isAllowed, type PolicyDocument } from './iam';
import { ThrottledError, type LambdaHost } from './lambda-host';

/**
 * The Lambda Invoke API (POST /2015-03-31/functions/{name}/invocations) for the rehearsal's
 * functions: what the start function, the nightly schedule and the sweeper use to start the planner
 * asynchronously, and the planner to run workers. Each call is checked as Lambda checks it: the
 * caller is the role its access key was issued for, and that role's policies must allow
 * lambda:InvokeFunction on the target's ARN. (The signature itself is not recomputed.)
 */
export class InvokeEndpoint {
  private server: Server | undefined;
  /** Where the endpoint listens, once started. */
  url = '';
  readonly denied: { caller: string; target: string }[] = [];

  constructor(
    private readonly host: LambdaHost,
    /** Access key id -> the role it was issued for. */
    private readonly principals: Map<string, string>,
    /** Role name -> its inline policies. */
    private readonly policies: Map<string, PolicyDocument[]>,
    private readonly accountId: string,
    private readonly region: string,
  ) {}

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res).catch((error: unknown) => send(res, 500, { message: (error as Error).message }, 'ServiceException')));
    await new Promise<void>((ready) => this.server!.listen(0, '127.0.0.1', ready));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((done) => this.server?.close(done) ?? done(undefined));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const match = /^\/2015-03-31\/functions\/([^/]+)\/invocations/.exec(req.url ?? '');
    const body = await readBody(req);
    if (req.method !== 'POST' || !match) return send(res, 404, { message: `no route ${req.method} ${req.url}` }, 'ResourceNotFoundException');
    const name = decodeURIComponent(match[1]!);
    const keyId = /Credential=([^/]+)\//.exec(req.headers.authorization ?? '')?.[1];
    const roleName = keyId ? this.principals.get(keyId) : undefined;
    if (!roleName) return send(res, 403, { message: 'The security token included in the request is invalid.' }, 'UnrecognizedClientException');
    let fn;
    try {
      fn = this.host.byName(name);
    } catch {
      return send(res, 404, { message: `Function not found: arn:aws:lambda:${this.region}:${this.accountId}:function:${name}` }, 'ResourceNotFoundException');
    }
    if (!isAllowed(this.policies.get(roleName) ?? [], 'lambda:InvokeFunction', fn.arn)) {
      this.denied.push({ caller: roleName, target: fn.functionName });
      return send(
        res,
        403,
        { message: `User: arn:aws:sts::${this.accountId}:assumed-role/${roleName}/rehearsal is not authorized to perform: lambda:InvokeFunction on resource: ${fn.arn}` },
        'AccessDeniedException',
      );
    }
    const event = body.length ? (JSON.parse(body.toString('utf8')) as unknown) : {};
    if ((req.headers['x-amz-invocation-type'] ?? 'RequestResponse') === 'Event') {
      const requestId = this.host.invokeAsync(fn.functionName, event);
      res.writeHead(202, { 'x-amzn-requestid': requestId, 'content-length': '0' });
      res.end();
      return;
    }
    let outcome;
    try {
      outcome = await this.host.invoke(fn.functionName, event);
    } catch (error) {
      if (error instanceof ThrottledError) return send(res, 429, { Reason: 'ReservedFunctionConcurrentInvocationLimitExceeded', message: error.message }, 'TooManyRequestsException');
      throw error;
    }
    const payload = JSON.stringify(outcome.ok ? outcome.result : outcome.error);
    res.writeHead(200, {
      'content-type': 'application/json',
      'x-amzn-requestid': outcome.requestId,
      'x-amz-executed-version': '$LATEST',
      ...(outcome.ok ? {} : { 'x-amz-function-error': 'Unhandled' }),
    });
    res.end(payload);
  }
}

function send(res: ServerResponse, status: number, body: unknown, errorType: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': errorType });
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => done(Buffer.concat(chunks)));
    req.on('error', fail);
  });
}
