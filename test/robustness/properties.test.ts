// Generated inputs for every parser (issue 12), in-process: listen addresses, CIDRs, node specs,
// connection strings and their masking, answers files, knocknoc.conf, upgrade commands, root paths
// and what is shown of outside text. Each property is something an operator would notice broken.
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { formatListen, parseCidr, parseListen, parseNodeSpec, parseTrustedForwarders } from '../../src/config/values.js';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { PreflightError, UsageError } from '../../src/errors.js';
import { nodeSetIssues } from '../../src/haproxy/config.js';
import { loadAnswersFile } from '../../src/installer/answers-file.js';
import { openInstaller } from '../../src/installer/index.js';
import { plannedConf } from '../../src/installer/plan.js';
import { buildDatabaseUrl, parseDatabaseUrl, redactUrl } from '../../src/postgres/url.js';
import { checkServerConfig } from '../../src/server/config.js';
import { jsonFailure } from '../../src/shared/json-failure.js';
import { hasControl, printable, printableData, printableLine, quoted } from '../../src/shared/printable.js';
import { isServing, parseStatusBody } from '../../src/server/status-body.js';
import { fileLogger, Scrubber } from '../../src/system/log.js';
import { PATHS, Root, rootPathProblem } from '../../src/system/root.js';
import { parseUpgradeCommand, recordableCommand, showArgv, splitWords } from '../../src/upgrade/command.js';
import { makeTempDir } from '../helpers/temp.js';

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir('knocker-props-');
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Any text, control characters and all (what a hostile file, flag or database row can hold). */
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', minLength: 200, maxLength: 3000 }),
);
const port = fc.oneof(fc.integer({ min: 1, max: 65535 }).map(String), fc.integer({ min: -5, max: 99999 }).map(String), fc.string({ maxLength: 6 }));
const ipv4 = fc.oneof(fc.ipV4(), fc.constantFrom('0.0.0.0', '127.0.0.1', '256.1.1.1', '010.1.1.1', '1.2.3'));
const ipv6 = fc.oneof(fc.ipV6(), fc.constantFrom('::', '::1', 'fe80::1%eth0', '::ffff:10.0.0.1'));
/** Listen addresses as operators write them, right and wrong. */
const listenText = fc.oneof(
  fc.tuple(ipv4, port).map(([h, p]) => `${h}:${p}`),
  fc.tuple(ipv6, port).map(([h, p]) => `[${h}]:${p}`),
  ipv6.map((h) => `[${h}]`),
  fc.tuple(ipv6, port).map(([h, p]) => `${h}:${p}`),
  fc.oneof(ipv4, ipv6),
  anyText,
);

/** What an error message must be, whatever the input: one line, printable, short. */
function wellShown(error: string): void {
  expect(hasControl(error), error).toBe(false);
  expect(error.length, error).toBeLessThan(600);
}

describe('values', () => {
  test('listen addresses: never a throw; a valid one round-trips; an error is one short printable line, and its "e.g." parses', () => {
    fc.assert(
      fc.property(listenText, (text) => {
        const parsed = parseListen(text);
        if (parsed.ok) {
          expect(parseListen(formatListen(parsed.value))).toEqual(parsed);
          return;
        }
        wellShown(parsed.error);
        const example = /e\.g\. (\S+)$/.exec(parsed.error)?.[1];
        if (example) expect(parseListen(example).ok, `${text} → ${parsed.error}`).toBe(true);
      }),
      { numRuns: 600 },
    );
  });

  test('CIDRs: a valid one is normalised once and for all; TrustedForwarders never take /0; errors are shown well', () => {
    const cidr = fc.oneof(
      fc.tuple(ipv4, fc.integer({ min: -1, max: 40 })).map(([a, b]) => `${a}/${b}`),
      fc.tuple(ipv6, fc.integer({ min: -1, max: 130 })).map(([a, b]) => `${a}/${b}`),
      ipv4,
      ipv6,
      anyText,
    );
    fc.assert(
      fc.property(fc.array(cidr, { minLength: 1, maxLength: 4 }), (list) => {
        for (const text of list) {
          const parsed = parseCidr(text);
          if (parsed.ok) expect(parseCidr(parsed.value)).toEqual(parsed);
          else wellShown(parsed.error);
        }
        const forwarders = parseTrustedForwarders(list.join(','));
        if (forwarders.ok) for (const c of forwarders.value) expect(c.endsWith('/0')).toBe(false);
        else wellShown(forwarders.error);
      }),
      { numRuns: 500 },
    );
  });

  test('node specs: a valid one is a node HAProxy can take; an error is shown well', () => {
    const name = fc.oneof(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,70}$/), anyText, fc.constantFrom('web\u001b]0;pwned\u0007', ' web-1', 'a b'));
    fc.assert(
      fc.property(name, listenText, fc.boolean(), (n, address, withEquals) => {
        const parsed = parseNodeSpec(withEquals ? `${n}=${address}` : `${n}${address}`);
        if (parsed.ok) expect(nodeSetIssues([{ ...parsed.value, backup: false }])).toEqual([]);
        else wellShown(parsed.error);
      }),
      { numRuns: 400 },
    );
  });
});

describe('connection strings', () => {
  const piece = fc.string({ unit: 'binary', minLength: 1, maxLength: 24 });
  test('built from any user, password and database: parsed back the same; masked exactly where the password is', () => {
    fc.assert(
      fc.property(
        piece,
        fc.string({ unit: 'binary', minLength: 6, maxLength: 30 }),
        piece,
        fc.ipV4(),
        fc.integer({ min: 1, max: 65535 }),
        (user, password, database, host, p) => {
          const url = buildDatabaseUrl({ host, port: p, user, password, database });
          const parsed = parseDatabaseUrl(url);
          expect(parsed.ok && parsed.value).toMatchObject({ user, password, database, host, port: p });
          expect(redactUrl(url)).toBe(buildDatabaseUrl({ host, port: p, user, database }).replace('@', ':****@'));
        },
      ),
      { numRuns: 400 },
    );
  });

  test('several hosts: parsed back in order; masked exactly where the password is', () => {
    fc.assert(
      fc.property(
        piece,
        fc.string({ unit: 'binary', minLength: 6, maxLength: 30 }),
        fc.array(fc.record({ host: fc.ipV4(), port: fc.integer({ min: 1, max: 65535 }) }), { minLength: 1, maxLength: 4 }),
        (user, password, hosts) => {
          const url = buildDatabaseUrl({ host: '', port: 0, hosts, user, password, database: 'knocknoc', params: { target_session_attrs: 'read-write' } });
          const parsed = parseDatabaseUrl(url);
          expect(parsed.ok && parsed.value).toMatchObject({ user, password, hosts, targetSessionAttrs: 'read-write' });
          expect(redactUrl(url)).toBe(
            buildDatabaseUrl({ host: '', port: 0, hosts, user, database: 'knocknoc', params: { target_session_attrs: 'read-write' } }).replace('@', ':****@'),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  test('a password written raw (an @ or : in it): masked whole, in messages and logs, as the connecting parser reads it', () => {
    const raw = fc.string({
      unit: fc.constantFrom('a', 'b', 'Z', '9', '@', ':', '!', '$', '%', '*', '[', ']', '=', ';', '&', "'", '~'),
      minLength: 6,
      maxLength: 24,
    });
    fc.assert(
      fc.property(raw, (password) => {
        const url = `postgres://knocknoc:${password}@127.0.0.9:5432/knocknoc`;
        const parsed = parseDatabaseUrl(url);
        if (!parsed.ok) return;
        expect(redactUrl(url)).toBe('postgres://knocknoc:****@127.0.0.9:5432/knocknoc');
        const several = `postgres://knocknoc:${password}@127.0.0.9:5432,127.0.0.10:5432/knocknoc?target_session_attrs=read-write`;
        expect(parseDatabaseUrl(several)).toMatchObject({ ok: true, value: { password: parsed.value.password } });
        expect(redactUrl(several)).toBe('postgres://knocknoc:****@127.0.0.9:5432,127.0.0.10:5432/knocknoc?target_session_attrs=read-write');
        const scrubber = new Scrubber();
        scrubber.add(parsed.value.password);
        const line = scrubber.scrub(`connecting with ${url} failed ("${url}")`);
        if (parsed.value.password!.length >= 6) expect(line).not.toContain(parsed.value.password!);
        expect(line).not.toContain(`:${password}@`);
      }),
      { numRuns: 400 },
    );
  });
});

describe('answers files', () => {
  const value = fc.oneof(
    anyText,
    fc.integer(),
    fc.constant(null),
    fc.array(anyText, { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 8 }), anyText, { maxKeys: 3 }),
  );
  const answers = fc.record(
    {
      version: fc.oneof(fc.constant(1), value),
      listen: fc.oneof(listenText, value),
      trustedForwarders: fc.oneof(fc.array(anyText, { maxLength: 3 }), value),
      serverName: value,
      database: fc.oneof(fc.record({ option: fc.oneof(fc.constantFrom(1, 2, 3), value), url: fc.oneof(anyText, value) }, { requiredKeys: [] }), value),
      haproxy: fc.oneof(
        fc.record(
          { bind: fc.oneof(listenText, value), nodes: fc.array(fc.oneof(anyText, fc.constant('web-1=127.0.0.1:8756')), { maxLength: 3 }) },
          { requiredKeys: [] },
        ),
        value,
      ),
      extra: value,
    },
    { requiredKeys: [] },
  );
  test('whatever the file holds: every problem is FILE:LINE:COL and one short printable line, never a throw', async () => {
    const { stringify } = await import('yaml');
    let n = 0;
    fc.assert(
      fc.property(
        fc.oneof(
          answers.map((a) => stringify(a)),
          answers.map((a) => JSON.stringify(a)),
          fc.string({ unit: 'binary', maxLength: 400 }),
        ),
        (text) => {
          const file = path.join(dir, `answers-${(n += 1)}.yaml`);
          fsSync.writeFileSync(file, text);
          const { loaded, problems } = loadAnswersFile(file);
          for (const problem of problems) {
            expect(problem.startsWith(`${file}:`), problem).toBe(true);
            expect(problem).toMatch(/^\S+:\d+:\d+: |^\S+: cannot read/);
            wellShown(problem.slice(file.length));
          }
          if (problems.length === 0) expect(loaded).toBeDefined();
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('knocknoc.conf', () => {
  const key = fc.constantFrom('Listen', 'TrustedForwarders', 'DatabaseOption', 'DatabaseURL', 'ServerName', 'Other_Key', 'listen');
  const line = fc.oneof(
    fc.tuple(key, fc.oneof(listenText, anyText, fc.constant('postgres://u:p@127.0.0.1:5432/d'))).map(([k, v]) => `${k} = ${v.replace(/[\r\n]/g, ' ')}`),
    fc.constantFrom('# a comment', '', '   ', 'Listen = 127.0.0.1:8756', 'garbage line', '= no key', '[section]'),
    anyText.map((t) => t.replace(/[\r\n]/g, ' ')),
  );
  test('an install either refuses the file (exit 2, its lines named) or writes one knocknoc-server accepts', async () => {
    const root = new Root(await makeTempDir('knocker-conf-root-'));
    const confFile = root.path(PATHS.conf);
    await fs.mkdir(path.dirname(confFile), { recursive: true });
    const url = 'postgres://knocknoc:secret-password@127.0.0.9:5432/knocknoc';
    const flags = { listen: '127.0.0.9:8756', databaseOption: '3', databaseUrl: url, serverName: 'web-1' };
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 8 }), async (lines) => {
        const text = `${lines.join('\n')}\n`;
        await fs.writeFile(confFile, text);
        // The lines knocknoc-server refuses outright (not "Key = value"): the install must name each.
        const junk = checkServerConfig(text, confFile, 'web-1').ok ? [] : KnocknocConf.parse(text).problems.map((p) => `${confFile}:${p.line}: `);
        let session;
        try {
          session = await openInstaller({ root, flags, env: {}, hostname: 'web-1' }, { dryRun: true });
        } catch (error) {
          expect(error).toBeInstanceOf(UsageError);
          const problems = (error as UsageError).problems;
          for (const problem of problems) wellShown(problem);
          for (const at of junk)
            expect(
              problems.some((p) => p.startsWith(at)),
              `${at} in ${problems.join(' | ')}`,
            ).toBe(true);
          return;
        }
        expect(junk).toEqual([]);
        // Accepted: what it writes from that file is one the server takes (never a refusal then).
        const answers = {
          listen: flags.listen,
          trustedForwarders: session.resolution.values.trustedForwarders!.value,
          serverName: 'web-1',
          databaseOption: 3 as const,
          databaseUrl: url,
        };
        expect(checkServerConfig(plannedConf(text, answers, url, confFile), confFile, 'web-1')).toMatchObject({ ok: true });
      }),
      { numRuns: 200 },
    );
    await fs.rm(root.dir, { recursive: true, force: true });
  });
});

describe('upgrade commands', () => {
  const token = fc.stringMatching(/^[A-Za-z0-9._~+/-]{12,40}$/).filter((t) => /[A-Za-z0-9]{4}/.test(t));
  const shapes = [
    (t: string) => `curl -H "Authorization: Bearer ${t}" https://deploy.example/{host}`,
    (t: string) => `curl -H Authorization: Bearer ${t} https://deploy.example/{host}`,
    (t: string) => `curl -H 'Authorization:Bearer ${t}' https://deploy.example/{name}`,
    (t: string) => `curl -H "authorization: ${t}" https://deploy.example/`,
    (t: string) => `curl --header=Authorization:${t} x`,
    (t: string) => `deploy --token ${t} {name}`,
    (t: string) => `deploy --api-key=${t} {name}`,
    (t: string) => `env DEPLOY_TOKEN=${t} ssh root@{host} upgrade`,
    (t: string) => `fetch https://ops:${t}@repo.example/{name}.deb`,
  ];
  test('a secret in the command is masked wherever it is shown, and the journal keeps it masked', () => {
    fc.assert(
      fc.property(token, fc.integer({ min: 0, max: shapes.length - 1 }), (t, i) => {
        const command = parseUpgradeCommand(shapes[i]!(t));
        expect(showArgv(command.words)).not.toContain(t);
        const kept = recordableCommand(command);
        expect(kept.masked).toBe(true);
        expect(kept.text).not.toContain(t);
        const again = splitWords(kept.text);
        expect(again.ok && again.words.length).toBe(command.words.length);
      }),
      { numRuns: 300 },
    );
  });
});

describe('root paths', () => {
  const hostile = fc.string({
    unit: fc.constantFrom('$', '`', '"', '\\', "'", ',', '(', ')', ' ', 'a', 'b', '/', ';', '|', '&', '*', '?', '!', '~', '{', '}', '\n', '\t', '-', '.'),
    maxLength: 20,
  });
  test("a root path pg_ctl would hand to /bin/sh is refused; one accepted comes through /bin/sh's double quotes as it is", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(hostile, anyText), async (tail) => {
        const dirPath = `/tmp/knocker-root-${tail}`;
        const problem = rootPathProblem(dirPath);
        if (/[$`"\\]/.test(dirPath)) expect(problem).toBeDefined();
        if (problem) {
          wellShown(problem);
          return;
        }
        // What pg_ctl does with -D and -l: exec "postgres" -D "DIR" … through /bin/sh -c.
        if (dirPath.includes('\0')) return;
        const echoed = await execa('/bin/sh', ['-c', `printf %s "${dirPath}"`]);
        expect(echoed.stdout).toBe(dirPath);
      }),
      { numRuns: 120 },
    );
  });
});

describe('outside text', () => {
  test('shown: no control character survives, a long value is cut, nothing is lost but those', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (text) => {
        expect(hasControl(printableLine(text))).toBe(false);
        expect(/[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/.test(printable(text))).toBe(false);
        expect(quoted(text).length).toBeLessThan(2 * 80 * 4 + 40);
        if (!hasControl(text)) expect(printableLine(text)).toBe(text);
      }),
      { numRuns: 500 },
    );
  });
});

describe('registry rows and /_status answers (issue 23)', () => {
  const validBody = fc.record({
    status: fc.constantFrom('ok', 'out-of-step', 'error'),
    server: fc.string({ maxLength: 20 }),
    version: fc.string({ maxLength: 10 }),
    schemaVersion: fc.nat(),
    databaseSchemaVersion: fc.option(fc.nat()),
    versionMatch: fc.boolean(),
    database: fc.constantFrom('ok', 'unreachable'),
    databaseHost: fc.option(fc.string({ maxLength: 20 })),
    uptimeSeconds: fc.nat(),
  });

  test("a /_status body: the node's own answer is read back as it is; any field of another type, or any other text, is not one, and never serving", () => {
    fc.assert(
      fc.property(validBody, (body) => {
        expect(parseStatusBody(JSON.stringify(body))).toEqual(body);
        expect(isServing({ http: 200, body: parseStatusBody(JSON.stringify(body)) })).toBe(body.status === 'ok' && body.versionMatch);
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(
        validBody,
        fc.constantFrom('status', 'server', 'version', 'schemaVersion', 'versionMatch', 'database', 'uptimeSeconds'),
        fc.oneof(fc.string(), fc.double(), fc.constant(null), fc.array(fc.nat()), fc.constant('true')),
        (body, key, odd) => {
          fc.pre(JSON.stringify((body as Record<string, unknown>)[key]) !== JSON.stringify(odd));
          const mangled = JSON.stringify({ ...body, [key]: odd });
          const parsed = parseStatusBody(mangled);
          // Only a value of the right kind passes (a string for server, e.g.).
          if (parsed) expect(typeof parsed[key as keyof typeof parsed]).toBe(typeof (body as Record<string, unknown>)[key]);
        },
      ),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.oneof(anyText, fc.json(), fc.string({ minLength: 0, maxLength: 5 })), (text) => {
        const parsed = parseStatusBody(text);
        if (!parsed) expect(isServing({ http: 200, body: parsed })).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  test('data drawn on one line (a dashboard snapshot): no string in it keeps a line break or a control character, whatever its depth', () => {
    fc.assert(
      fc.property(fc.anything({ withMap: true, withDate: true, withNullPrototype: false, stringUnit: 'binary' }), (value) => {
        const seen: string[] = [];
        const walk = (v: unknown) => {
          if (typeof v === 'string') seen.push(v);
          else if (Array.isArray(v)) v.forEach(walk);
          else if (v instanceof Map) [...v.values()].forEach(walk);
          else if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) Object.values(v).forEach(walk);
        };
        walk(printableData(value, true));
        for (const s of seen) expect(hasControl(s)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  test('the run log: whatever a message holds, every line of the file begins with a time stamp and a level, and only the first of a message is an entry', async () => {
    const file = path.join(dir, 'generated.log');
    await fc.assert(
      fc.asyncProperty(fc.array(anyText, { minLength: 1, maxLength: 5 }), async (messages) => {
        // A message of its own that begins "| " reads as a continuation: that is no forged entry.
        fc.pre(!messages.some((m) => m.startsWith('| ')));
        await fs.rm(file, { force: true });
        const log = fileLogger(file);
        for (const m of messages) log.info(m);
        const lines = (await fs.readFile(file, 'utf8')).replace(/\n$/, '').split('\n');
        const entries = lines.filter((l) => /^\S+Z INFO {2}(?!\| )/.test(l));
        expect(entries).toHaveLength(messages.length);
        for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}/);
      }),
      { numRuns: 100 },
    );
  });

  test('a failed --json run: one JSON object whatever the error holds', () => {
    fc.assert(
      fc.property(anyText, fc.array(anyText, { maxLength: 3 }), fc.constantFrom(1, 2, 3, 4, 5), (message, hints, code) => {
        const error = code === 2 ? new UsageError(message, hints) : code === 3 ? new PreflightError(message, hints) : new Error(message);
        const parsed = JSON.parse(jsonFailure(error, code as 1 | 2 | 3 | 4 | 5)) as {
          ok: boolean;
          exitCode: number;
          verdict: string;
          error: { message: string };
        };
        expect(parsed).toMatchObject({ ok: false, exitCode: code });
        expect(parsed.verdict.startsWith('failed: ')).toBe(true);
        expect(parsed.error.message).toBe(message.replace(/^error: /, ''));
      }),
      { numRuns: 300 },
    );
  });
});
