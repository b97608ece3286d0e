import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A private PostgreSQL cluster for the integration tests: initdb in a temporary folder and start
 * it on a free loopback port. PostgreSQL refuses to run as root, so under root it runs as the
 * `postgres` user. LOYALTY_TEST_DATABASE_URL skips all this and uses an existing server.
 */
export interface TestPostgres {
  url: string;
  stop(): void;
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const existing = process.env.LOYALTY_TEST_DATABASE_URL;
  if (existing) return { url: existing, stop: () => undefined };

  const bin = findPostgresBin();
  const root = mkdtempSync(join(tmpdir(), 'loyalty-ml-pg-'));
  const data = join(root, 'data');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) chownSync(root, uid('postgres'), gid('postgres'));
  const run = (cmd: string, args: string[]) => {
    const full = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
    const result = spawnSync(full[0] as string, full[1] as string[], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`${cmd} failed: ${result.stderr || result.stdout}`);
  };
  const port = await freePort();
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']);
  run('pg_ctl', [
    '-D', data, '-l', join(root, 'server.log'), '-w', '-t', '60',
    '-o', `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`,
    'start',
  ]);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: () => {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  };
}

/**
 * A PostgreSQL that accepts only TLS connections with a password (pg_hba: `hostssl` with SCRAM,
 * nothing else over TCP), as a managed warehouse does. Its certificate is self-signed, made at
 * start; `ca` is that certificate, which a client must trust. An administrator reaches it through
 * its Unix socket (`admin`), to create the application's login and load data.
 */
export interface TlsPostgres {
  port: number;
  /** The certificate (PEM) clients must trust. */
  ca: string;
  /** Connection settings for the administrator, over the Unix socket (no TLS, no TCP). */
  admin: { host: string; port: number; user: string; database: string };
  /** Freezes every server process (the warehouse "hangs": connections stay open, nothing answers). */
  pause(): void;
  resume(): void;
  stop(): void;
}

export async function startTlsPostgres(login: { user: string; password: string; database: string }): Promise<TlsPostgres> {
  const bin = findPostgresBin();
  const root = mkdtempSync(join(tmpdir(), 'loyalty-ml-pgtls-'));
  const data = join(root, 'data');
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => {
    const full = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
    const result = spawnSync(full[0] as string, full[1] as string[], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`${cmd} failed: ${result.stderr || result.stdout}`);
    return result.stdout;
  };
  const cert = join(root, 'server.crt');
  const key = join(root, 'server.key');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`openssl could not make a certificate: ${made.stderr}`);
  chmodSync(key, 0o600);
  if (asRoot) for (const path of [root, cert, key]) chownSync(path, uid('postgres'), gid('postgres'));
  const port = await freePort();
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']);
  writeFileSync(join(data, 'pg_hba.conf'), 'local all postgres trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n');
  run('pg_ctl', [
    '-D', data, '-l', join(root, 'server.log'), '-w', '-t', '60',
    '-o', `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=${cert} -c ssl_key_file=${key} -c password_encryption=scram-sha-256 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`,
    'start',
  ]);
  const psql = (sql: string, database = 'postgres') => run('psql', ['-h', root, '-p', String(port), '-U', 'postgres', '-d', database, '-v', 'ON_ERROR_STOP=1', '-q', '-c', sql]);
  psql(`CREATE ROLE ${login.user} LOGIN PASSWORD '${login.password.replace(/'/g, "''")}'`);
  psql(`CREATE DATABASE ${login.database} OWNER ${login.user}`);
  const processes = () => {
    const pid = readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]!.trim();
    const children = spawnSync('pgrep', ['-P', pid], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    return [pid, ...children].map(Number);
  };
  const signal = (sig: NodeJS.Signals) => {
    for (const pid of processes()) {
      try {
        process.kill(pid, sig);
      } catch {
        /* gone */
      }
    }
  };
  return {
    port,
    ca: readFileSync(cert, 'utf8'),
    admin: { host: root, port, user: 'postgres', database: login.database },
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    stop: () => {
      signal('SIGCONT');
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  };
}

function findPostgresBin(): string {
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(base, versions[0], 'bin');
  }
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      'PostgreSQL server binaries not found: install them (Debian: apt-get install postgresql) ' +
        'or set LOYALTY_TEST_DATABASE_URL to a server the tests may use.',
    );
  }
}

function uid(user: string): number {
  return Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
}

function gid(user: string): number {
  return Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A new, empty database on the test server, so test files running in parallel never share tables.
 */
export async function createTestDatabase(serverUrl: string, prefix: string): Promise<string> {
  const { default: pg } = await import('pg');
  const name = `${prefix}_${process.pid}_${Math.floor(Math.random() * 1e9)}`.replace(/[^a-z0-9_]/gi, '_').toLowerCase();
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
