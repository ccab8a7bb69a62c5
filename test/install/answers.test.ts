import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { didYouMean } from '../../src/config/suggest.js';
import { answersToYaml, loadAnswersFile } from '../../src/installer/answers-file.js';
import { answersFrom, resolveAnswers, validateField } from '../../src/installer/answers.js';
import { makeTempDir } from '../helpers/temp.js';

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir('knocker-answers-');
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function write(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, text);
  return file;
}

describe('answers file', () => {
  test('the contract example loads', async () => {
    const file = await write(
      'good.yaml',
      [
        'version: 1',
        'listen: "0.0.0.0:8756"',
        'trustedForwarders: ["192.168.100.1/32"]',
        'serverName: web-2',
        'database:',
        '  option: 3',
        '  url: "postgres://knocknoc:secret@192.0.2.10:5432/knocknoc"',
        'haproxy:',
        '  bind: "0.0.0.0:80"',
        '  nodes: ["web-1=192.0.2.11:8756", "web-2=192.0.2.12:8756"]',
        '',
      ].join('\n'),
    );
    const { loaded, problems } = loadAnswersFile(file);
    expect(problems).toEqual([]);
    expect(loaded?.values.listen).toEqual({ value: '0.0.0.0:8756', line: 2, col: 9 });
    expect(loaded?.values.databaseOption?.value).toBe('3');
    expect(loaded?.haproxy?.nodes).toHaveLength(2);
  });

  test('JSON works too, with positions', async () => {
    const file = await write('good.json', '{\n  "version": 1,\n  "listen": "10.0.0.1:99999"\n}\n');
    expect(loadAnswersFile(file).problems).toEqual([`${file}:3:13: listen: port 99999 is out of range (1–65535)`]);
  });

  test('every problem at once, each with file:line:column, unknown keys with a suggestion', async () => {
    const file = await write(
      'bad.yaml',
      ['version: 1', 'listen: 0.0.0.0', 'trusted_forwarders: 10.0.0.0/8', 'database:', '  option: 4', '  ulr: postgres://x', 'colour: blue', ''].join('\n'),
    );
    const { problems } = loadAnswersFile(file);
    expect(problems).toEqual([
      `${file}:2:9: listen: "0.0.0.0" has no port; write it as IP:port, e.g. 0.0.0.0:8756`,
      `${file}:3:1: unknown key "trusted_forwarders" (did you mean "trustedForwarders"?)`,
      `${file}:5:11: database.option: "4" is not an option; choose 1, 2 or 3`,
      `${file}:6:3: unknown key "ulr" in database (did you mean "url"?)`,
      `${file}:7:1: unknown key "colour"`,
    ]);
  });

  test('value problems are all reported when the structure is right', async () => {
    const file = await write('values.yaml', 'version: 1\nlisten: 0.0.0.0\ntrustedForwarders: [10.0.0.0/33]\ndatabase:\n  option: 4\n');
    expect(loadAnswersFile(file).problems).toEqual([
      `${file}:2:9: listen: "0.0.0.0" has no port; write it as IP:port, e.g. 0.0.0.0:8756`,
      `${file}:3:20: trustedForwarders: "10.0.0.0/33": the prefix length must be 0–32`,
      `${file}:5:11: database.option: "4" is not an option; choose 1, 2 or 3`,
    ]);
  });

  test('wrong types, a missing version, YAML syntax errors and duplicate keys', async () => {
    const types = await write('types.yaml', 'listen: 8756\ntrustedForwarders: {a: 1}\n');
    expect(loadAnswersFile(types).problems).toEqual([
      `${types}:1:1: version is required`,
      `${types}:1:9: listen must be a string`,
      `${types}:2:20: trustedForwarders must be a list of CIDRs or one comma-separated string`,
    ]);
    const syntax = await write('syntax.yaml', 'version: 1\nlisten: [unclosed\n');
    expect(loadAnswersFile(syntax).problems[0]).toMatch(new RegExp(`^${syntax}:\\d+:\\d+: `));
    const dup = await write('dup.yaml', 'version: 1\nlisten: 0.0.0.0:1\nlisten: 0.0.0.0:2\n');
    expect(loadAnswersFile(dup).problems[0]).toMatch(/dup\.yaml:3:1: Map keys must be unique/);
    const missing = loadAnswersFile(path.join(dir, 'nope.yaml'));
    expect(missing.problems[0]).toMatch(/cannot read the answers file/);
  });

  test('urlFile reads the connection string from a file; url and urlFile together are refused', async () => {
    await write('db-url', 'postgres://knocknoc:s3cret@127.0.0.9:5432/knocknoc\n');
    const file = await write('urlfile.yaml', 'version: 1\ndatabase:\n  option: 3\n  urlFile: db-url\n');
    expect(loadAnswersFile(file).loaded?.values.databaseUrl?.value).toBe('postgres://knocknoc:s3cret@127.0.0.9:5432/knocknoc');
    const both = await write('both.yaml', 'version: 1\ndatabase:\n  option: 3\n  url: postgres://a:b@h/d\n  urlFile: db-url\n');
    expect(loadAnswersFile(both).problems).toEqual([`${both}:5:3: give database.url or database.urlFile, not both`]);
  });

  test('did you mean', () => {
    expect(didYouMean('serverame', ['serverName', 'listen'])).toBe('serverName');
    expect(didYouMean('Listen', ['serverName', 'listen'])).toBe('listen');
    expect(didYouMean('zzz', ['serverName', 'listen'])).toBeUndefined();
  });
});

describe('resolution', () => {
  const conf = KnocknocConf.parse('# mine\nListen = 10.0.0.1:8756\nDatabaseOption = 1\nDatabaseURL = postgres://knocknoc:pw@127.0.0.1:5432/knocknoc\n');

  test('flag > environment > answers file > knocknoc.conf > default, with provenance', async () => {
    const file = await write('p.yaml', 'version: 1\nlisten: 10.0.0.3:8756\ntrustedForwarders: 10.9.0.0/16\nserverName: from-file\n');
    const answersFile = loadAnswersFile(file).loaded;
    const r = resolveAnswers({
      flags: { listen: '10.0.0.4:8756' },
      env: { listen: '10.0.0.5:8756', trustedForwarders: '10.8.0.1/16' },
      answersFile,
      conf: { conf, file: '/opt/knocknoc/etc/knocknoc.conf' },
      hostname: 'host1.example.com',
    });
    expect(r.problems).toEqual([]);
    expect(r.values.listen).toEqual({ value: '10.0.0.4:8756', source: { kind: 'flag', name: '--listen' } });
    expect(r.values.trustedForwarders).toEqual({ value: ['10.8.0.0/16'], source: { kind: 'env', name: 'KNOCKNOC_TRUSTED_FORWARDERS' } });
    expect(r.values.serverName?.source).toEqual({ kind: 'file', file, line: 4, col: 13 });
    expect(r.values.databaseOption).toEqual({ value: 1, source: { kind: 'conf', file: '/opt/knocknoc/etc/knocknoc.conf', line: 3 } });
    const defaults = resolveAnswers({ flags: {}, env: {}, hostname: 'host1.example.com' });
    expect(answersFrom(defaults)).toEqual({ listen: '127.0.0.1:8756', trustedForwarders: ['127.0.0.1/32'], serverName: 'host1', databaseOption: 1 });
  });

  test("options 2 and 3 need a connection string; knocknoc.conf's only counts for the same option", () => {
    const r = resolveAnswers({ flags: { databaseOption: '3' }, env: {}, conf: { conf, file: 'k.conf' }, hostname: 'h' });
    expect(r.missing).toEqual([expect.stringMatching(/^database\.url: the connection string for option 3/)]);
  });

  test('a connection string with option 1 is refused, an invalid flag or environment value is named', () => {
    const r = resolveAnswers({ flags: { databaseUrl: 'postgres://a:b@h/d', listen: 'nope' }, env: { serverName: 'bad name' }, hostname: 'h' });
    expect(r.problems).toEqual([
      expect.stringMatching(/^--listen: /),
      expect.stringMatching(/^KNOCKNOC_SERVER_NAME: "bad name" is not a valid server name/),
      expect.stringMatching(/^--database-url: a connection string was given, but option 1 creates its own local database/),
    ]);
  });

  test('answers written for reuse never hold the password; printed ones redact it', () => {
    const answers = {
      listen: '0.0.0.0:8756',
      trustedForwarders: ['10.0.0.0/8'],
      serverName: 'web-2',
      databaseOption: 3 as const,
      databaseUrl: 'postgres://knocknoc:s3cretpw@192.0.2.10:5432/knocknoc',
    };
    const saved = answersToYaml(answers, { password: 'omit' });
    expect(saved).not.toContain('s3cretpw');
    expect(saved).toContain('url: postgres://knocknoc@192.0.2.10:5432/knocknoc');
    const printed = answersToYaml(answers, { password: 'redact' });
    expect(printed).toContain('url: postgres://knocknoc:****@192.0.2.10:5432/knocknoc');
  });
});

describe('the database CA answer', () => {
  test('a file name is made absolute; PEM text needs both markers (the preflight reads the certificate itself)', () => {
    expect(validateField('databaseCa', 'ca.pem')).toEqual({ ok: true, value: path.resolve('ca.pem') });
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';
    expect(validateField('databaseCa', pem)).toEqual({ ok: true, value: `${pem}\n` });
    const cut = validateField('databaseCa', '-----BEGIN CERTIFICATE-----\nMIIB');
    expect(cut.ok).toBe(false);
    expect(cut.ok ? '' : cut.error).toContain('holds no PEM certificate');
    expect(validateField('databaseCa', '').ok).toBe(false);
    expect(validateField('databaseCa', 'a\nb').ok).toBe(false);
  });
});
