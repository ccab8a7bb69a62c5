// Hostile input through the real program (issue 12): what cannot be read, what would reach a shell,
// what must stay secret and what comes from outside, each as an operator would meet it. Generated
// inputs here are few (each case is a process); the parsers get thousands in properties.test.ts.
import { spawn } from 'node:child_process';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { migrate } from '../src/schema/index.js';
import { loadRelease } from '../src/schema/index.js';
import { PATHS } from '../src/system/root.js';
import { connectFrom, sharedDatabase } from './helpers/server.js';
import { KNOCKER, cleanEnv, knocker } from './helpers/knocker.js';
import { useRoots } from './helpers/roots.js';
import { makeTempDir } from './helpers/temp.js';

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
  expect(result.stderr).not.toMatch(/internal error|    at |\(node:\d+\) Warning/);
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
    await fs.writeFile(bomb, ['version: 1', 'a: &a ["x","x","x","x","x","x","x","x","x"]', ...'bcdefg'.split('').map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefg'[i]}`).join(',')}]`)].join('\n'));
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
        const answers = { version: 1, listen: '127.0.0.190:8756', database: { option: 3, url: `postgres://knocknoc:${secret}@127.0.0.190:5432/knocknoc` }, ...mistake };
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
        const result = await knocker(['install', '--root', root.dir, '--print-answers', '--database-option', '3', '--database-url', 'postgres://knocknoc:hidden-secret@127.0.0.190:5432/knocknoc', flag, v]);
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
      JSON.stringify({ version: 1, state: 'stopped', pid: 999_999_999, startedAt: now, updatedAt: now, command: "curl -H 'Authorization: Bearer ****' x", commandMasked: true, first: 'web-1', servers: [], history: [] }),
      { mode: 0o600 },
    );
    const result = await knocker(['upgrade', '--resume', '--root', root.dir, '--non-interactive']);
    noCrash(result);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('error: the upgrade command held a secret, which the journal does not keep: give it again (--upgrade-command, or KNOCKNOC_UPGRADE_COMMAND)');
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
    expect(result.stderr).toContain(`error: ${conf} has a line knocknoc-server refuses; nothing was changed\n  ${conf}:2: not a "Key = value" line: "this line is not a setting"`);
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
