// Hostile input through the real program (issue 12): what cannot be read, what would reach a shell,
// what must stay secret and what comes from outside, each as an operator would meet it. Generated
// inputs here are few (each case is a process); the parsers get thousands in properties.test.ts.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import { getEventListeners } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { render } from 'ink-testing-library';
import { createElement } from 'react';
import { migrate } from '../../src/schema/index.js';
import { Dashboard } from '../../src/status-app.js';
import { openMonitor, staleAfterMs } from '../../src/status/index.js';
import { loadRelease } from '../../src/schema/index.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { connectFrom, request, sharedDatabase, waitFor } from '../helpers/server.js';
import { waitForFrame } from '../helpers/ink.js';
import { KNOCKER, cleanEnv, knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { makeTempDir } from '../helpers/temp.js';
import { DRY_RUN_KEYS } from '../../src/system/runner.js';

const newRoot = useRoots();
let dir: string;
beforeAll(async () => {
  dir = await makeTempDir('knocker-robust-');
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Nothing an operator can cause is "a bug": no internal error, no stack, no Node warning. */
function noCrash(result: { exitCode: number; stderr: string }): void {
  expect(result.exitCode, result.stderr).not.toBe(1);
  expect(result.stderr).not.toMatch(/internal error| {4}at |\(node:\d+\) Warning/);
}

/** A run whose exit code 1 has a meaning of its own (service status: something is stopped): still no bug's words. */
function noStack(result: { stderr: string }): void {
  expect(result.stderr).not.toMatch(/internal error| {4}at |\(node:\d+\) Warning/);
}

const RAW_CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/;

describe('bounded input', () => {
  test('the answers file or its urlFile: never a FIFO, a device or a huge file; YAML limits and odd keys are invalid input (exit 2)', async () => {
    const fifo = path.join(dir, 'answers.fifo');
    await execa('mkfifo', [fifo]);
    const big = path.join(dir, 'big.yaml');
    await fs.writeFile(big, `version: 1\nlisten: "${'9'.repeat(2 * 1024 * 1024)}"\n`);
    const urlFromZero = path.join(dir, 'url-zero.yaml');
    await fs.writeFile(urlFromZero, 'version: 1\ndatabase:\n  option: 3\n  urlFile: /dev/zero\n');
    const bomb = path.join(dir, 'bomb.yaml');
    await fs.writeFile(
      bomb,
      [
        'version: 1',
        'a: &a ["x","x","x","x","x","x","x","x","x"]',
        ...'bcdefg'.split('').map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefg'[i]}`).join(',')}]`),
      ].join('\n'),
    );
    const binaryKey = path.join(dir, 'binary.yaml');
    await fs.writeFile(binaryKey, 'version: 1\n? !!binary aGVsbG8=\n: x\n');
    const cases: Array<[string, RegExp]> = [
      ['/dev/zero', /\/dev\/zero: cannot read the answers file: \/dev\/zero is a device; only a regular file is read/],
      [fifo, /is a FIFO \(named pipe\); only a regular file is read/],
      [big, /is bigger than 1,048,576 bytes/],
      [urlFromZero, /:4:12: cannot read database\.urlFile \/dev\/zero: \/dev\/zero is a device/],
      [bomb, /:1:1: Excessive alias count/],
      [binaryKey, /:2:12: a key must be a plain name/],
    ];
    for (const [file, message] of cases) {
      const root = await newRoot();
      const result = await knocker(['install', '--root', root.dir, '--answers', file, '--non-interactive'], { timeoutMs: 30_000 });
      noCrash(result);
      expect(result.exitCode, file).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr.length).toBeLessThan(2000);
      expect(await fs.readdir(root.dir)).toEqual([]);
    }
  });

  test('generated answers files with a mistake: exit 2, nothing written, the password never shown', async () => {
    const password = fc.stringMatching(/^[A-Za-z0-9]{12,20}$/);
    const bad = fc.constantFrom(
      { listen: '[::1]' },
      { listen: 'x'.repeat(70_000) },
      { trustedForwarders: ['0.0.0.0/0'] },
      { serverName: 'web\u001b]0;pwned\u0007' },
      { haproxy: { bind: '0.0.0.0:80', nodes: ['web-1=127.0.0.1:8756', 'web-1=127.0.0.2:8756'] } },
      { database: { option: 4 } },
      { unknownKey: 1 },
      { version: 2 },
    );
    await fc.assert(
      fc.asyncProperty(password, bad, fc.boolean(), async (secret, mistake, asJson) => {
        const root = await newRoot();
        const file = path.join(dir, `generated.${asJson ? 'json' : 'yaml'}`);
        const answers = {
          version: 1,
          listen: '127.0.0.190:8756',
          database: { option: 3, url: `postgres://knocknoc:${secret}@127.0.0.190:5432/knocknoc` },
          ...mistake,
        };
        await fs.writeFile(file, asJson ? JSON.stringify(answers) : (await import('yaml')).stringify(answers));
        const result = await knocker(['install', '--root', root.dir, '--answers', file, '--non-interactive']);
        noCrash(result);
        expect(result.exitCode, result.stderr).toBe(2);
        expect(`${result.stdout}${result.stderr}`).not.toContain(secret);
        expect(RAW_CONTROL.test(result.stderr)).toBe(false);
        expect(result.stderr.length).toBeLessThan(3000);
        expect(await fs.readdir(root.dir)).toEqual([]);
      }),
      { numRuns: 10 },
    );
  });

  test('generated flag values: the answers printed or refused (exit 0 or 2), never a crash, never echoed whole', async () => {
    const root = await newRoot();
    const value = fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), fc.string({ minLength: 5000, maxLength: 100_000 })).map((v) => v.replace(/\0/g, ''));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('--listen', '--trusted-forwarders', '--server-name', '--database-url'), value, async (flag, v) => {
        const result = await knocker([
          'install',
          '--root',
          root.dir,
          '--print-answers',
          '--database-option',
          '3',
          '--database-url',
          'postgres://knocknoc:hidden-secret@127.0.0.190:5432/knocknoc',
          flag,
          v,
        ]);
        noCrash(result);
        expect([0, 2]).toContain(result.exitCode);
        expect(RAW_CONTROL.test(`${result.stdout}${result.stderr}`)).toBe(false);
        for (const line of result.stderr.split('\n')) expect(line.length).toBeLessThan(1000);
        expect(`${result.stdout}${result.stderr}`).not.toContain('hidden-secret');
      }),
      { numRuns: 12 },
    );
    expect(await fs.readdir(root.dir)).toEqual([]);
  });
});

describe('no value reaches a shell', () => {
  test('a root whose path pg_ctl would hand to /bin/sh is refused up front by every command (exit 2); nothing runs', async () => {
    const marker = path.join(dir, 'pwned');
    const hostile = path.join(dir, `a$(touch ${marker})b`);
    const backtick = path.join(dir, `c\`touch ${marker}\`d`);
    await fs.mkdir(hostile, { recursive: true, mode: 0o755 });
    for (const [root, args] of [
      [hostile, ['install', '--listen', '127.0.0.191:8756']],
      [hostile, ['exposedb', '--init']],
      [backtick, ['haproxy', 'setup', 'web-1=127.0.0.191:8756']],
      [backtick, ['service', 'start', 'postgres']],
    ] as const) {
      const result = await knocker([...args, '--root', root]);
      noCrash(result);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toMatch(/error: the root folder's path holds a character it cannot have \([$`]\): PostgreSQL's pg_ctl would hand it to \/bin\/sh/);
    }
    const env = await knocker(['install', '--listen', '127.0.0.191:8756'], { env: { KNOCKNOC_ROOT: hostile } });
    expect(env.exitCode).toBe(2);
    await expect(fs.access(marker)).rejects.toThrow();
    expect(await fs.readdir(hostile)).toEqual([]);
  });

  test('a certificate path HAProxy cannot quote is invalid input, in a dry run too (exit 2)', async () => {
    const root = await newRoot();
    const result = await knocker(['haproxy', 'setup', 'web-1=127.0.0.191:8756', '--cert', "/etc/ssl/it's.pem", '--dry-run', '--root', root.dir]);
    noCrash(result);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`error: --cert: "/etc/ssl/it's.pem" cannot be written in an HAProxy configuration`);
  });
});

describe('secrets', () => {
  test('a password with a raw @ is masked whole, everywhere the string is shown', async () => {
    const root = await newRoot();
    const url = 'postgres://knocknoc:p@ss@wordsecret@127.0.0.190:5432/knocknoc';
    for (const args of [['--print-answers'], ['--explain'], ['--print-answers', '--json']]) {
      const result = await knocker(['install', '--root', root.dir, '--database-option', '3', ...args], { env: { KNOCKNOC_DATABASE_URL: url } });
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toContain('postgres://knocknoc:****@127.0.0.190:5432/knocknoc');
      expect(result.stdout).not.toMatch(/ss@|wordsecret/);
    }
  });

  test('--resume of an upgrade whose command held a secret asks for it again: the journal never kept it', async () => {
    const root = await newRoot();
    const journal = root.path(PATHS.upgradeJournal);
    await fs.mkdir(path.dirname(journal), { recursive: true });
    const now = new Date().toISOString();
    await fs.writeFile(
      journal,
      JSON.stringify({
        version: 1,
        state: 'stopped',
        pid: 999_999_999,
        startedAt: now,
        updatedAt: now,
        command: "curl -H 'Authorization: Bearer ****' x",
        commandMasked: true,
        first: 'web-1',
        servers: [],
        history: [],
      }),
      { mode: 0o600 },
    );
    const result = await knocker(['upgrade', '--resume', '--root', root.dir, '--non-interactive']);
    noCrash(result);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(
      'error: the upgrade command held a secret, which the journal does not keep: give it again (--upgrade-command, or KNOCKNOC_UPGRADE_COMMAND)',
    );
  });
});

describe('clear failures', () => {
  test('a reader that goes away (| head -1) ends nothing in error: exit 0, no EPIPE', async () => {
    // A FIFO whose reader has closed: every write to it fails with EPIPE, deterministically.
    const fifo = path.join(dir, 'closed.fifo');
    await execa('mkfifo', [fifo]);
    const reader = fsSync.openSync(fifo, fsSync.constants.O_RDONLY | fsSync.constants.O_NONBLOCK);
    const writer = fsSync.openSync(fifo, fsSync.constants.O_WRONLY);
    fsSync.closeSync(reader);
    const child = spawn(process.execPath, [KNOCKER, 'install', '--help'], { stdio: ['ignore', writer, 'pipe'], env: cleanEnv() });
    fsSync.closeSync(writer);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  test('knocknoc.conf with a line knocknoc-server refuses: install says where (exit 2) and leaves it', async () => {
    const root = await newRoot();
    const conf = root.path(PATHS.conf);
    await fs.mkdir(path.dirname(conf), { recursive: true });
    const text = 'Listen = 127.0.0.190:8756\nthis line is not a setting\nDatabaseOption = 1\n';
    await fs.writeFile(conf, text, { mode: 0o600 });
    const result = await knocker(['install', '--root', root.dir]);
    noCrash(result);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(
      `error: ${conf} has a line knocknoc-server refuses; nothing was changed\n  ${conf}:2: not a "Key = value" line: "this line is not a setting"`,
    );
    expect(await fs.readFile(conf, 'utf8')).toBe(text);
  });

  test('answers-file mistakes read right: a map, not "a object"; duplicate nodes at file:line:col; the [::1] hint', async () => {
    const root = await newRoot();
    const file = path.join(dir, 'words.yaml');
    await fs.writeFile(file, 'version: 1\nlisten: "[::1]"\ndatabase: 3\nhaproxy:\n  bind: 0.0.0.0:80\n  nodes: [web-1=127.0.0.1:8756, web-1=127.0.0.2:8756]\n');
    const result = await knocker(['install', '--root', root.dir, '--answers', file, '--non-interactive']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${file}:2:9: listen: "[::1]" has no port; write it as IP:port, e.g. [::1]:8756`);
    expect(result.stderr).toContain(`${file}:3:11: database must be a map of keys and values`);
    expect(result.stderr).toMatch(new RegExp(`${file.replace(/[.]/g, '\\.')}:6:33: haproxy\\.nodes\\[1\\]: two nodes are named "web-1"`));
  });
});

describe('strings from the database are data', () => {
  const db = sharedDatabase({ host: '127.0.0.192' });
  test('names and versions with escape sequences: shown escaped by status --once, refused by haproxy setup --from-registry (exit 2) with the reason', async () => {
    const client = await connectFrom('127.0.0.192', db.url);
    try {
      await migrate(client, loadRelease().migrations, 'test');
      await client.query(
        `INSERT INTO servers (name, listen, version, schema_version, state, instance, heartbeat_seconds, started_at, last_seen)
         VALUES ($1, '127.0.0.193:8756', $2, 1, 'running', 'x', 5, now(), now())`,
        ['web\u001b]0;pwned\u0007', '1.0.0\u001b[2J'],
      );
    } finally {
      await client.end();
    }
    const root = await newRoot();
    const conf = root.path(PATHS.conf);
    await fs.mkdir(path.dirname(conf), { recursive: true });
    await fs.writeFile(conf, `Listen = 127.0.0.192:8756\nDatabaseURL = ${db.url}\nServerName = web-1\n`, { mode: 0o600 });

    const once = await knocker(['status', '--once', '--root', root.dir]);
    expect(once.exitCode).toBe(1);
    expect(once.stdout).toContain('web\\x1B]0;pwned\\x07');
    expect(once.stdout).toContain('1.0.0\\x1B[2J');
    expect(RAW_CONTROL.test(once.stdout + once.stderr)).toBe(false);

    const setup = await knocker(['haproxy', 'setup', '--from-registry', '--dry-run', '--bind', '127.0.0.192:8080', '--root', root.dir]);
    noCrash(setup);
    expect(setup.exitCode).toBe(2);
    expect(setup.stderr).toContain('"web\\x1B]0;pwned\\x07": HAProxy cannot take this name');
    expect(RAW_CONTROL.test(setup.stdout + setup.stderr)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Issue 23: broken files, hostile registry rows and odd files never stop an operator.

/** The pid knocker's daemon records for the server under a root. */
async function serverPid(root: Root): Promise<number> {
  return Number((await fs.readFile(root.path(PATHS.serverPid), 'utf8')).trim());
}

describe('a broken knocknoc.conf never takes a healthy host down or hides what runs', () => {
  test('restart refuses a file the server refuses before stopping anything (file:line, exit 2); a node that fails shows its whole words; a conf of random bytes: status finds both from records, stop all stops them', async () => {
    const root = await newRoot();
    const host = '127.0.0.196';
    const listen = `${host}:${await freePort(host)}`;
    const install = await knocker(['install', '--root', root.dir, '--listen', listen, '--server-name', 'web-1']);
    expect(install.exitCode, install.stderr).toBe(0);
    const confFile = root.path(PATHS.conf);
    const good = await fs.readFile(confFile, 'utf8');
    const pid = await serverPid(root);
    const lines = good.trimEnd().split('\n').length;
    const emptyHost = good.replace(/^(DatabaseURL = postgres:\/\/[^@]+@)([^/]+)\//m, '$1$2,,$2/');
    expect(emptyHost).not.toBe(good);
    for (const [text, problem] of [
      [`${good}not a key value line\n`, `${confFile}:${lines + 1}: not a "Key = value" line: "not a key value line"`],
      [emptyHost, `${confFile}:${emptyHost.split('\n').findIndex((l) => l.startsWith('DatabaseURL')) + 1}: DatabaseURL: the host list has an empty entry`],
    ] as const) {
      await fs.writeFile(confFile, text, { mode: 0o600 });
      for (const action of ['restart', 'start']) {
        const result = await knocker(['service', action, 'server', '--root', root.dir]);
        noCrash(result);
        if (action === 'start') {
          // Running already: nothing to start, nothing refused.
          expect(result.exitCode, result.stderr).toBe(0);
          continue;
        }
        expect(result.exitCode, result.stderr).toBe(2);
        expect(result.stderr).toContain(`error: knocknoc-server would not start with ${confFile}; nothing was stopped or started\n  ${problem}`);
        expect(result.stdout).not.toContain('Stop the Knocknoc server');
      }
      expect(await serverPid(root)).toBe(pid);
      expect((await request(`http://${listen}/_status`)).status).toBe(200);
    }
    await fs.writeFile(confFile, good, { mode: 0o600 });

    // A node that stops instead of serving: its own words, whole, after a log holding multi-byte text.
    expect((await knocker(['service', 'stop', 'server', '--root', root.dir])).exitCode).toBe(0);
    await fs.appendFile(root.path(PATHS.serverLog), 'é… ✔ ×\n'.repeat(3));
    const [bindHost, bindPort] = [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];
    // Holds the port and answers nothing: each connection is closed at once.
    const squatter = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => squatter.listen(bindPort, bindHost, resolve));
    try {
      const failed = await knocker(['service', 'start', 'server', '--root', root.dir]);
      noCrash(failed);
      expect(failed.exitCode).toBe(4);
      expect(failed.stderr).toMatch(/^ {2}knocknoc-server: error: /m);
      expect(failed.stderr).not.toMatch(/^ {2}[^k ]\S*-server: error/m);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
    expect((await knocker(['service', 'start', 'server', '--root', root.dir])).exitCode).toBe(0);

    // Overwritten while both run: knocker's own records (pid file, the private cluster) still say what runs.
    await fs.writeFile(confFile, crypto.randomBytes(300), { mode: 0o600 });
    const status = await knocker(['service', 'status', '--root', root.dir]);
    noStack(status);
    expect(status.exitCode, status.stdout + status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^postgres {2}running {5}private cluster /m);
    expect(status.stdout).toMatch(/^server {4}running {5}pid \d+; knocknoc\.conf is not usable/m);
    expect(RAW_CONTROL.test(status.stdout + status.stderr)).toBe(false);
    const refused = await knocker(['service', 'restart', 'all', '--root', root.dir]);
    expect(refused.exitCode).toBe(2);
    expect((await request(`http://${listen}/_status`)).status).toBe(200);

    const stop = await knocker(['service', 'stop', 'all', '--root', root.dir]);
    noCrash(stop);
    expect(stop.exitCode, stop.stderr).toBe(0);
    await expect(request(`http://${listen}/_status`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    const after = await knocker(['service', 'status', '--root', root.dir]);
    expect(after.exitCode).toBe(1);
    expect(after.stdout).toMatch(/^postgres {2}stopped /m);
    expect(after.stdout).toMatch(/^server {4}stopped /m);
  }, 240_000);

  test('generated hostile knocknoc.conf (random bytes of any size, a FIFO, a folder, a device link): service status never crashes, never hangs, shows what runs', async () => {
    const root = await newRoot();
    // The server's records without a running node: a log and a pid file naming no process of ours.
    await fs.mkdir(path.dirname(root.path(PATHS.serverLog)), { recursive: true });
    await fs.writeFile(root.path(PATHS.serverLog), 'it ran here\n');
    const confFile = root.path(PATHS.conf);
    const kind = fc.oneof(
      fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ minLength: 0, maxLength: 2000 }) }),
      fc.record({ kind: fc.constant('big' as const), size: fc.integer({ min: 1024 * 1024 + 1, max: 3 * 1024 * 1024 }) }),
      fc.constantFrom({ kind: 'fifo' as const }, { kind: 'folder' as const }, { kind: 'device' as const }),
    );
    await fc.assert(
      fc.asyncProperty(kind, async (made) => {
        await fs.rm(confFile, { recursive: true, force: true });
        await fs.mkdir(path.dirname(confFile), { recursive: true });
        if (made.kind === 'bytes') await fs.writeFile(confFile, made.bytes, { mode: 0o600 });
        else if (made.kind === 'big') await fs.writeFile(confFile, Buffer.alloc(made.size, 'A'), { mode: 0o600 });
        else if (made.kind === 'fifo') await execa('mkfifo', [confFile]);
        else if (made.kind === 'folder') await fs.mkdir(confFile);
        else await fs.symlink('/dev/zero', confFile);
        const result = await knocker(['service', 'status', '--root', root.dir], { timeoutMs: 30_000 });
        noStack(result);
        expect(result.exitCode, result.stderr).toBe(1);
        expect(result.stdout).toMatch(/^server {4}stopped {5}knocknoc\.conf is not usable/m);
        expect(RAW_CONTROL.test(result.stdout + result.stderr)).toBe(false);
        for (const line of (result.stdout + result.stderr).split('\n')) expect(line.length).toBeLessThan(1000);
      }),
      { numRuns: 10 },
    );
  }, 120_000);
});

/** An address that answers every request 200 with `body` (a function: what to send on the response). */
async function answering200(host: string, send: (res: http.ServerResponse) => void): Promise<{ address: string; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.on('error', () => {});
    send(res);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `${host}:${port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** 50 MB of a JSON-looking body, written as the reader takes it (never all in memory). */
function fiftyMegabytes(res: http.ServerResponse): void {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  let left = 50 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, ' ');
  const more = () => {
    while (left > 0) {
      left -= chunk.length;
      if (!res.write(chunk)) return void res.once('drain', more);
    }
    res.end();
  };
  res.write('{"status":"ok","versionMatch":true,');
  more();
}

describe('registry rows are untrusted data', () => {
  const db = sharedDatabase({ host: '127.0.0.194' });
  const FORGED = '2026-12-07T00:00:00.000Z INFO  server forget web-b: deleted from the registry';

  test('names with line breaks stay on one line everywhere; a heartbeat of 2147483647 is one odd row; a 200 that is not a Knocknoc /_status answer is a failure', async () => {
    const notJson = await answering200('127.0.0.195', (res) => res.end('{not json'));
    const huge = await answering200('127.0.0.195', fiftyMegabytes);
    try {
      const client = await connectFrom('127.0.0.194', db.url);
      try {
        await migrate(client, loadRelease().migrations, 'test');
        const insert = (name: string, listen: string, state: string, heartbeat: number) =>
          client.query(
            `INSERT INTO servers (name, listen, version, schema_version, state, instance, heartbeat_seconds, started_at, last_seen)
             VALUES ($1, $2, '1.0.0', 1, $3, 'x', $4, now(), now())`,
            [name, listen, state, heartbeat],
          );
        await insert(`web-a\n${FORGED}`, notJson.address, 'running', 5);
        await insert('web-huge-heartbeat', huge.address, 'running', 2147483647);
        await insert(`web-gone\r\n${FORGED}`, '127.0.0.195:9', 'stopped', 5);
      } finally {
        await client.end();
      }
      const root = await newRoot();
      const conf = root.path(PATHS.conf);
      await fs.mkdir(path.dirname(conf), { recursive: true });
      await fs.writeFile(conf, `Listen = 127.0.0.194:8756\nDatabaseURL = ${db.url}\nServerName = web-here\n`, { mode: 0o600 });
      const startsForged = /^2026-12-07T00:00:00\.000Z/m;

      const list = await knocker(['server', 'list', '--root', root.dir]);
      noCrash(list);
      expect(list.exitCode, list.stderr).toBe(0);
      const listLines = list.stdout.trimEnd().split('\n');
      // The header and one line a row on stdout; the hint to retire the gone one on stderr (the output rule).
      expect(listLines).toHaveLength(1 + 3);
      expect(list.stderr).toContain('A server gone for good is retired with:');
      expect(list.stderr).not.toMatch(startsForged);
      expect(list.stdout).toContain(`web-a\\n${FORGED}`);
      expect(list.stdout).toContain(`web-gone\\x0D\\n${FORGED}`);
      expect(list.stdout).toMatch(/^web-huge-heartbeat +127\.0\.0\.195:\d+ +online /m);
      expect(list.stdout).not.toMatch(startsForged);
      const listJson = JSON.parse((await knocker(['server', 'list', '--json', '--root', root.dir])).stdout) as Array<{ name: string }>;
      expect(listJson.map((s) => s.name).sort()).toEqual([`web-a\n${FORGED}`, `web-gone\r\n${FORGED}`, 'web-huge-heartbeat']);

      const once = await knocker(['status', '--once', '--root', root.dir]);
      noStack(once);
      expect(once.exitCode, once.stdout + once.stderr).toBe(1);
      expect(once.stdout).toContain('degraded: 3 of 3 servers not healthy');
      expect(once.stdout).not.toMatch(startsForged);
      expect(once.stdout).toMatch(/web-a\\n2026.*: .*\/_status answered 200, but not with a Knocknoc \/_status answer/);
      expect(once.stdout).toMatch(/web-huge-heartbeat: .*\/_status answered 200, but not with a Knocknoc \/_status answer/);
      const json = JSON.parse((await knocker(['status', '--json', '--root', root.dir])).stdout) as {
        exitCode: number;
        summary: { servers: number; healthy: number };
      };
      expect(json).toMatchObject({ exitCode: 1, summary: { servers: 3, healthy: 0 } });

      // The dashboard: one row per server, the name escaped in it.
      const monitor = await openMonitor(root, { intervalMs: 1000 });
      monitor.start();
      const ui = render(createElement(Dashboard, { services: { monitor, staleAfterMs: () => staleAfterMs(monitor) }, onExit: () => {} }));
      try {
        const drawn = await waitForFrame(ui, '0 of 3 servers healthy');
        expect(drawn).toContain('web-a\\n2026');
        expect(drawn).not.toMatch(/^\W*2026-12-07T00:00:00\.000Z/m);
      } finally {
        ui.unmount();
        await monitor.stop();
      }

      // Retired by its name as list shows it: the messages and the audit log keep it on one line.
      const forget = await knocker(['server', 'forget', `web-gone\\x0D\\n${FORGED}`, '--root', root.dir]);
      noCrash(forget);
      expect(forget.exitCode, forget.stderr).toBe(0);
      // What was retired is said on stderr (the output rule): stdout stays empty.
      expect(forget.stdout).toBe('');
      expect(forget.stderr).toContain(`Removed "web-gone\\x0D\\n${FORGED}" from the registry`);
      expect(forget.stderr).not.toMatch(startsForged);
      const online = await knocker(['server', 'forget', `web-a\n${FORGED}`, '--root', root.dir]);
      expect(online.exitCode).toBe(3);
      expect(online.stderr).toContain(`error: "web-a\\n${FORGED}" is online`);
      expect(online.stderr).not.toMatch(startsForged);
      const audit = await fs.readFile(root.path(PATHS.opsLog), 'utf8');
      // The run's own lines only: none of them is the forged one.
      expect(audit).not.toMatch(startsForged);
      expect(audit).toContain(`server forget web-gone\\x0D\\n${FORGED}: deleted from the registry`);
    } finally {
      await Promise.all([notJson.close(), huge.close()]);
    }
  }, 120_000);

  test('generated hostile names: server list keeps one line per row, every character shown, never obeyed', async () => {
    const root = await newRoot();
    const conf = root.path(PATHS.conf);
    await fs.mkdir(path.dirname(conf), { recursive: true });
    await fs.writeFile(conf, `Listen = 127.0.0.194:8756\nDatabaseURL = ${db.url}\nServerName = web-here\n`, { mode: 0o600 });
    // Line breaks of every kind, terminal controls, bidirectional overrides and ordinary letters.
    const unit = fc.oneof(
      fc.constantFrom('\n', '\r', '\t', '\u000b', '\u000c', '\u001b', '\u0007', '\u0085', '\u009b', '\u2028', '\u2029', '\u202e', '\u2066'),
      fc.constantFrom(...'web-1 é界.'),
    );
    const name = fc.string({ unit, minLength: 1, maxLength: 40 });
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(name, { minLength: 1, maxLength: 4 }), async (names) => {
        const client = await connectFrom('127.0.0.194', db.url);
        try {
          await migrate(client, loadRelease().migrations, 'test');
          await client.query('DELETE FROM servers');
          for (const n of names) {
            await client.query(
              `INSERT INTO servers (name, listen, version, schema_version, state, instance, heartbeat_seconds, started_at, last_seen)
               VALUES ($1, '127.0.0.195:9', '1.0.0', 1, 'stopped', 'x', 5, now(), now())`,
              [n],
            );
          }
        } finally {
          await client.end();
        }
        const list = await knocker(['server', 'list', '--root', root.dir]);
        noCrash(list);
        expect(list.exitCode, list.stderr).toBe(0);
        expect(list.stdout.trimEnd().split('\n')).toHaveLength(1 + names.length);
        expect(RAW_CONTROL.test(list.stdout)).toBe(false);
        expect(RAW_CONTROL.test(list.stderr)).toBe(false);
      }),
      { numRuns: 15 },
    );
  }, 120_000);
});

describe('files are read only when they are what they should be', () => {
  test('service logs on a FIFO, a folder, a socket or a device: refused at once with a sentence (exit 3), with -f too', async () => {
    const root = await newRoot();
    const kinds = {
      fifo: [async (file: string) => void (await execa('mkfifo', [file])), 'is a FIFO (named pipe); only a regular file is read'],
      folder: [(file: string) => fs.mkdir(file).then(() => undefined), 'is a folder; only a regular file is read'],
      device: [(file: string) => fs.symlink('/dev/zero', file), 'is a device; only a regular file is read'],
      socket: [
        async (file: string) => {
          const server = net.createServer();
          await new Promise<void>((resolve) => server.listen(file, resolve));
          // Closing the listener removes its file: keep it by making a hard link first.
          await fs.link(file, `${file}.kept`).catch(() => {});
          await new Promise((resolve) => server.close(resolve));
          await fs.rename(`${file}.kept`, file).catch(() => {});
        },
        'only a regular file is read',
      ],
    } as const;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...(Object.keys(kinds) as Array<keyof typeof kinds>)),
        fc.constantFrom('server', 'postgres', 'haproxy'),
        fc.boolean(),
        async (kind, which, follow) => {
          const file = root.path(which === 'server' ? PATHS.serverLog : which === 'postgres' ? PATHS.pgLog : PATHS.haproxyLog);
          await fs.rm(file, { recursive: true, force: true });
          await fs.mkdir(path.dirname(file), { recursive: true });
          await kinds[kind][0](file);
          const exists = await fs.lstat(file).catch(() => undefined);
          if (!exists) return;
          const result = await knocker(['service', 'logs', which, ...(follow ? ['-f'] : []), '--root', root.dir], { timeoutMs: 30_000 });
          noCrash(result);
          expect(result.exitCode, result.stderr).toBe(3);
          expect(result.stderr).toContain(`error: cannot read ${file} `);
          expect(result.stderr).toContain(kinds[kind][1]);
        },
      ),
      { numRuns: 12 },
    );
  }, 120_000);

  test('service logs -f: a poll leaves no listener behind (no MaxListenersExceededWarning); SIGTERM and Ctrl-C end it (exit 0)', async () => {
    const root = await newRoot();
    const log = root.path(PATHS.serverLog);
    await fs.mkdir(path.dirname(log), { recursive: true });
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      await fs.writeFile(log, `${signal} 0\n`);
      const follow = execa(process.execPath, [KNOCKER, 'service', 'logs', '-f', '-n', '1', '--root', root.dir], {
        env: cleanEnv(),
        extendEnv: false,
        reject: false,
      });
      let seen = '';
      follow.stdout!.setEncoding('utf8').on('data', (chunk: string) => (seen += chunk));
      await waitFor('the first line', () => (seen.includes(`${signal} 0\n`) ? true : undefined));
      // Each line waits for the follower to see it: every round is a poll that found nothing first.
      for (let i = 1; i <= 16; i += 1) {
        await fs.appendFile(log, `${signal} ${i}\n`);
        await waitFor(`line ${i}`, () => (seen.includes(`${signal} ${i}\n`) ? true : undefined));
      }
      follow.kill(signal);
      const result = await follow;
      expect(result.exitCode, String(result.stderr)).toBe(0);
      expect(String(result.stderr)).not.toMatch(/MaxListenersExceededWarning|\(node:\d+\) Warning/);
    }

    // Whether Node warns depends on its version: count the listeners on the follow's signal itself.
    const { serviceLogs } = await import('../../src/service/logs.js');
    const stop = new AbortController();
    const printed: string[] = [];
    const following = serviceLogs(root, 'server', { follow: true, lines: 1, stop: stop.signal }, { out: (line) => printed.push(line), err: () => {} });
    for (let i = 1; i <= 16; i += 1) {
      await fs.appendFile(log, `counted ${i}\n`);
      await waitFor(`counted ${i}`, () => (printed.includes(`counted ${i}`) ? true : undefined));
    }
    expect(getEventListeners(stop.signal, 'abort').length).toBeLessThanOrEqual(1);
    stop.abort();
    expect(await following).toBe(0);
  }, 120_000);

  test("uninstall removes what knocker writes in var/log/knocknoc and run/knocknoc (its names and their rotations), never an operator's file there", async () => {
    const root = await newRoot();
    const logDir = root.path(PATHS.logDir);
    const runDir = root.path(PATHS.runDir);
    await fs.mkdir(path.join(runDir, 'postgresql'), { recursive: true });
    await fs.mkdir(logDir, { recursive: true });
    // knocker.log is kept without --purge-data: it is the record of what the uninstall removed.
    const knockers = [
      PATHS.installLog,
      `${PATHS.installLog}.1`,
      `${PATHS.serverLog}.1`,
      PATHS.haproxyLog,
      PATHS.serverPid,
      `${PATHS.pgSocketDir}/.s.PGSQL.5432.lock`,
    ].map((f) => root.path(f));
    const operators = [
      path.join(logDir, 'notes.txt'),
      path.join(logDir, 'install.log.old'),
      path.join(logDir, 'knocknoc.log.2'),
      path.join(runDir, 'my-tool.pid'),
      path.join(runDir, 'postgresql', 'README'),
    ];
    for (const file of [...knockers, ...operators]) await fs.writeFile(file, 'x\n');
    const result = await knocker(['uninstall', '--yes', '--root', root.dir]);
    noCrash(result);
    expect(result.exitCode, result.stderr).toBe(0);
    for (const file of knockers) await expect(fs.access(file), file).rejects.toThrow();
    for (const file of operators) expect(await fs.readFile(file, 'utf8'), file).toBe('x\n');
    expect(await fs.readFile(root.path(PATHS.opsLog), 'utf8')).toContain('knocker uninstall');
  });
});

describe('scripts always get their JSON', () => {
  test('every --json run prints exactly one JSON object on stdout, with the verdict and the error, whatever the exit code', async () => {
    const root = await newRoot();
    const bad = path.join(dir, 'bad-answers.yaml');
    await fs.writeFile(bad, 'version: 1\nlisten: "[::1]"\n');
    const runs: Array<[string[], number]> = [
      [['status', '--json'], 3],
      [['server', 'list', '--json'], 3],
      [['standby', 'status', '--json'], 3],
      [['install', '--dry-run', '--json', '--answers', bad, '--non-interactive'], 2],
      [['install', '--print-answers', '--json', '--listen', 'nonsense'], 2],
      [['haproxy', 'list', '--json'], 3],
      [['status', '--json', '--no-such-flag'], 2],
      [['server', 'forget', 'web-9', '--dry-run', '--json'], 3],
    ];
    for (const [args, code] of runs) {
      const result = await knocker([...args, '--root', root.dir]);
      noCrash(result);
      expect(result.exitCode, `${args.join(' ')}: ${result.stderr}`).toBe(code);
      if (args.includes('--dry-run')) {
        // A dry run keeps the one shape every --dry-run --json has, its error in `error`.
        const plan = JSON.parse(result.stdout) as Record<string, unknown> & { error: { exitCode: number; message: string } };
        expect(Object.keys(plan), args.join(' ')).toEqual([...DRY_RUN_KEYS]);
        expect(plan.error.exitCode).toBe(code);
        expect(plan.error.message.length).toBeGreaterThan(0);
      } else {
        const parsed = JSON.parse(result.stdout) as { ok: boolean; exitCode: number; verdict: string; error: { message: string } };
        expect(parsed, args.join(' ')).toMatchObject({ ok: false, exitCode: code });
        expect(parsed.verdict).toMatch(/^failed: /);
        expect(parsed.error.message.length).toBeGreaterThan(0);
      }
      expect(result.stderr).toContain('error');
    }
  });
});

describe('one closed-pipe rule', () => {
  /** Runs knocker with stdout a pipe whose reader has already gone (as `| head -1` once head is done): every write gets EPIPE. */
  async function intoClosedPipe(args: string[]): Promise<{ code: number | null; stderr: string }> {
    const fifo = path.join(dir, `closed-${crypto.randomUUID()}.fifo`);
    await execa('mkfifo', [fifo]);
    const reader = fsSync.openSync(fifo, fsSync.constants.O_RDONLY | fsSync.constants.O_NONBLOCK);
    const writer = fsSync.openSync(fifo, fsSync.constants.O_WRONLY);
    fsSync.closeSync(reader);
    const child = spawn(process.execPath, [KNOCKER, ...args], { stdio: ['ignore', writer, 'pipe'], env: cleanEnv() });
    fsSync.closeSync(writer);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    await fs.rm(fifo, { force: true });
    return { code, stderr };
  }

  test('`knocker … | head -1` for every read command: the same exit code as with a reader, nothing about the pipe, and a follow ends', async () => {
    const root = await newRoot();
    const log = root.path(PATHS.serverLog);
    await fs.mkdir(path.dirname(log), { recursive: true });
    await fs.writeFile(log, `${Array.from({ length: 5000 }, (_, i) => `line ${i} é…`).join('\n')}\n`);
    const reads = [
      ['--help'],
      ['--version'],
      ['install', '--help'],
      ['status', '--once'],
      ['status', '--json'],
      ['server', 'list'],
      ['server', 'list', '--json'],
      ['service', 'status'],
      ['service', 'logs', '-n', '5000'],
      ['service', 'logs', '-f', '-n', '5000'],
      ['haproxy', 'list'],
      ['haproxy', 'status'],
      ['exposedb', '--list'],
      ['standby', 'status'],
      ['install', '--print-answers', '--database-option', '3', '--database-url', 'postgres://knocknoc:secret-x@127.0.0.198:5432/knocknoc'],
      ['uninstall', '--dry-run'],
      ['uninstall', '--dry-run', '--json'],
    ];
    for (const args of reads) {
      const full = args[0] === '--help' || args[0] === '--version' ? args : [...args, '--root', root.dir];
      // -f runs until stopped: with a reader, its exit is that of a Ctrl-C (0).
      const expected = args.includes('-f') ? 0 : (await knocker(full)).exitCode;
      const closed = await intoClosedPipe(full);
      expect(closed.code, `${args.join(' ')}: ${closed.stderr}`).toBe(expected);
      expect(closed.stderr).not.toMatch(/EPIPE|ERR_STREAM_DESTROYED|internal error| {4}at /);
    }
  }, 240_000);
});
