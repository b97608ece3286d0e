import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { parseCommandArgs, intOption, UsageError, type Command } from '../../lib/cli/runtime';
import { startConsoleServer } from '../../lib/console/server';
import { apiSigner, regionOfApiUrl } from '../../lib/console/sigv4';

export const consoleCommand: Command = {
  name: 'console',
  summary: 'the operators\' console for a deployed stage, signing its API calls with your AWS credentials',
  usage: `loyalty-ml console --api URL [--port N] [--region REGION] [--segments ID,ID...]

Serves the console (models with their charts, segments with their trends, scoring by hand) and the
API reference on http://localhost:PORT (default 3000), and passes the page's API calls to the
deployed stage's API at URL (its HttpApiUrl output, or a function URL), signed with SigV4 by the
AWS credentials of this shell (AWS_PROFILE, SSO, environment...). The browser never holds
credentials, and the API needs no CORS or separate login. Read-only: promote and roll back with
\`loyalty-ml promote|rollback --registry s3://...\`. The overview shows the latest runs of --segments
(default SCHEDULED_SEGMENTS, or all). Locally, \`npm start\` serves the same console.`,
  async run(args, io) {
    const { values } = parseCommandArgs(args, { api: { type: 'string' }, port: { type: 'string' }, region: { type: 'string' }, segments: { type: 'string' } }, { min: 0, max: 0, names: '' });
    if (!values.api) throw new UsageError('console needs --api URL: the deployed stage\'s HttpApiUrl (npx osls info --stage STAGE --verbose)');
    let api: URL;
    try {
      api = new URL(values.api);
    } catch {
      throw new UsageError(`--api ${values.api} is not a URL`);
    }
    const region = values.region ?? regionOfApiUrl(api) ?? process.env.AWS_REGION;
    if (!region) throw new UsageError(`cannot tell the region of ${api.hostname}: give --region`);
    const port = intOption(values.port, '--port', 3000, [0, 65535]);
    const sign = apiSigner({ region, service: api.hostname.includes('.lambda-url.') ? 'lambda' : 'execute-api', credentials: fromNodeProviderChain() });
    const segments = (values.segments ?? process.env.SCHEDULED_SEGMENTS ?? 'all').split(',').map((s) => s.trim()).filter(Boolean);
    const server = await startConsoleServer({ port, apiUrl: api.toString(), sign, label: api.hostname, segments });
    io.out(`console on ${server.url}/console/ (API reference ${server.url}/docs), calling ${api.origin} as your AWS identity in ${region}; Ctrl-C stops it`);
    await new Promise<void>((done) => {
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
    });
    await server.close();
    return 0;
  },
};
