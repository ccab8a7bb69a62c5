import { describe, expect, test } from 'vitest';
import { parseCidr, parseDatabaseOption, parseListen, parseServerName, parseTrustedForwarders } from '../../src/config/values.js';
import { parseDatabaseUrl, redactUrl, buildDatabaseUrl, urlWithoutPassword, withRootCert } from '../../src/postgres/url.js';

describe('listen address', () => {
  test.each([
    ['127.0.0.1:8756', '127.0.0.1', 8756],
    ['0.0.0.0:1', '0.0.0.0', 1],
    ['[::]:8756', '::', 8756],
    ['[2001:DB8::1]:65535', '2001:db8::1', 65535],
    ['  10.0.0.5:443 ', '10.0.0.5', 443],
  ])('%s is valid', (input, host, port) => {
    expect(parseListen(input)).toEqual({ ok: true, value: expect.objectContaining({ host, port }) });
  });

  test.each([
    ['', /enter an address/],
    ['127.0.0.1', /no port/],
    ['127.0.0.1:0', /out of range/],
    ['127.0.0.1:65536', /out of range/],
    ['127.0.0.1:http', /not a port/],
    ['256.1.1.1:80', /not an IPv4 or IPv6/],
    ['010.1.1.1:80', /not an IPv4 or IPv6/],
    ['example.com:80', /not an IPv4 or IPv6/],
    ['::1:8756', /brackets/],
    ['[fe80::1%eth0]:80', /zone/],
    ['[::ffff:10.0.0.1]:80', /IPv4-mapped/],
  ])('%j is refused (%s)', (input, message) => {
    const result = parseListen(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(message);
  });
});

describe('CIDRs', () => {
  test.each([
    ['10.1.2.3/24', '10.1.2.0/24'],
    ['10.1.2.3', '10.1.2.3/32'],
    ['192.168.100.1/32', '192.168.100.1/32'],
    ['2001:DB8:0:0::1/32', '2001:db8::/32'],
    ['::1', '::1/128'],
  ])('%s normalises to %s', (input, expected) => {
    expect(parseCidr(input)).toEqual({ ok: true, value: expected });
  });

  test.each([['foo'], ['10.0.0.0/33'], ['10.0.0.0/-1'], ['10.0.0/8'], ['::ffff:10.0.0.1/128'], ['']])('%j is refused', (input) => {
    expect(parseCidr(input).ok).toBe(false);
  });

  test('TrustedForwarders: a list or a comma-separated string, normalised, without duplicates, never /0', () => {
    expect(parseTrustedForwarders('10.1.2.3/24, 192.168.100.1/32,10.1.2.9/24')).toEqual({ ok: true, value: ['10.1.2.0/24', '192.168.100.1/32'] });
    expect(parseTrustedForwarders(['127.0.0.1/32', '::1'])).toEqual({ ok: true, value: ['127.0.0.1/32', '::1/128'] });
    expect(parseTrustedForwarders('0.0.0.0/0')).toEqual({ ok: false, error: expect.stringMatching(/every address/) });
    expect(parseTrustedForwarders(' ')).toEqual({ ok: false, error: expect.stringMatching(/at least one/) });
    expect(parseTrustedForwarders('10.0.0.0/8,bogus').ok).toBe(false);
  });
});

test('database option is 1, 2 or 3', () => {
  expect(parseDatabaseOption('3')).toEqual({ ok: true, value: 3 });
  expect(parseDatabaseOption(2)).toEqual({ ok: true, value: 2 });
  for (const bad of ['0', '4', 'one', '', '1.0']) expect(parseDatabaseOption(bad).ok).toBe(false);
});

test('server names are usable as HAProxy server names', () => {
  expect(parseServerName('web-2')).toEqual({ ok: true, value: 'web-2' });
  for (const bad of ['', '-web', 'web 2', 'a'.repeat(64), 'wéb']) expect(parseServerName(bad).ok).toBe(false);
});

describe('connection strings', () => {
  test('parses user, password, host, port and database, percent-decoded', () => {
    const parsed = parseDatabaseUrl('postgres://knocknoc:p%40ss%3Aw%2Frd@192.0.2.10:5433/knock%20noc?sslmode=require');
    expect(parsed).toEqual({
      ok: true,
      value: expect.objectContaining({ user: 'knocknoc', password: 'p@ss:w/rd', host: '192.0.2.10', port: 5433, database: 'knock noc', sslmode: 'require' }),
    });
  });

  test('IPv6 hosts and the default port', () => {
    expect(parseDatabaseUrl('postgresql://u:p@[2001:db8::5]/db')).toEqual({ ok: true, value: expect.objectContaining({ host: '2001:db8::5', port: 5432 }) });
  });

  test.each([
    ['', /enter a connection string/],
    ['mysql://u:p@h/db', /starts with postgres/],
    ['postgres://u:p@h:70000/db', /not a valid|out of range/],
    ['postgres://u:p@h:5432/', /no database/],
    ['postgres://:p@h:5432/db', /no user/],
    ['postgres://u:p@h/db?sslmode=sometimes', /sslmode/],
    ['postgres://u:p@h/db?frobnicate=1', /unknown connection parameter "frobnicate"/],
  ])('%j is refused', (input, message) => {
    const result = parseDatabaseUrl(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(message);
  });

  test('building percent-encodes, and round-trips', () => {
    const url = buildDatabaseUrl({ host: '::1', port: 5432, user: 'a@b', password: 'p@ss:w/rd%?#&\'"\\ x', database: 'db/1' });
    expect(parseDatabaseUrl(url)).toEqual({
      ok: true,
      value: expect.objectContaining({ user: 'a@b', password: 'p@ss:w/rd%?#&\'"\\ x', database: 'db/1', host: '::1' }),
    });
  });

  test('several hosts (libpq multi-host form) with target_session_attrs', () => {
    const parsed = parseDatabaseUrl(
      'postgres://u:p%40w@198.18.0.11:5432,[2001:db8::5],db2.example:5433/knocknoc?target_session_attrs=read-write&sslmode=verify-full&sslrootcert=/etc/knocknoc/ca.crt',
    );
    expect(parsed).toEqual({
      ok: true,
      value: expect.objectContaining({
        host: '198.18.0.11',
        port: 5432,
        hosts: [
          { host: '198.18.0.11', port: 5432 },
          { host: '2001:db8::5', port: 5432 },
          { host: 'db2.example', port: 5433 },
        ],
        targetSessionAttrs: 'read-write',
        password: 'p@w',
        sslmode: 'verify-full',
        sslrootcert: '/etc/knocknoc/ca.crt',
      }),
    });
    expect(parseDatabaseUrl('postgres://u:p@h/db')).toEqual({
      ok: true,
      value: expect.objectContaining({ hosts: [{ host: 'h', port: 5432 }], targetSessionAttrs: 'any' }),
    });
    for (const [bad, message] of [
      ['postgres://u:p@h1:5432,,h2/db', /empty entry/],
      ['postgres://u:p@h1:5432,/db', /empty entry/],
      ['postgres://u:p@h1,h2:99999/db', /not a valid|out of range/],
      ['postgres://u:p@h1,h2/db?target_session_attrs=writable', /target_session_attrs "writable"/],
    ] as const) {
      const result = parseDatabaseUrl(bad);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error).toMatch(message);
    }
    const built = buildDatabaseUrl({
      host: '',
      port: 0,
      hosts: [
        { host: '127.0.0.2', port: 5432 },
        { host: '::1', port: 5433 },
      ],
      user: 'u',
      password: 'a,b@c',
      database: 'knocknoc',
      params: { target_session_attrs: 'read-write' },
    });
    expect(built).toBe('postgres://u:a%2Cb%40c@127.0.0.2:5432,[::1]:5433/knocknoc?target_session_attrs=read-write');
    expect(parseDatabaseUrl(built)).toEqual({
      ok: true,
      value: expect.objectContaining({
        password: 'a,b@c',
        hosts: [
          { host: '127.0.0.2', port: 5432 },
          { host: '::1', port: 5433 },
        ],
      }),
    });
  });

  test('a multi-host string is masked and given its CA with the same parser', () => {
    const text = 'postgres://knocknoc:s3,cr@t@198.18.0.11:5432,198.18.0.12:5432/knocknoc?target_session_attrs=read-write';
    expect(parseDatabaseUrl(text)).toEqual({ ok: true, value: expect.objectContaining({ password: 's3,cr@t' }) });
    expect(redactUrl(text)).toBe('postgres://knocknoc:****@198.18.0.11:5432,198.18.0.12:5432/knocknoc?target_session_attrs=read-write');
    expect(urlWithoutPassword(text)).toBe('postgres://knocknoc@198.18.0.11:5432,198.18.0.12:5432/knocknoc?target_session_attrs=read-write');
    const withCa = withRootCert(text, '/etc/knocknoc/database-ca.crt');
    expect(withCa).toBe(
      'postgres://knocknoc:s3,cr@t@198.18.0.11:5432,198.18.0.12:5432/knocknoc?target_session_attrs=read-write&sslmode=verify-full&sslrootcert=/etc/knocknoc/database-ca.crt',
    );
    expect(parseDatabaseUrl(withCa)).toEqual({
      ok: true,
      value: expect.objectContaining({
        sslmode: 'verify-full',
        sslrootcert: '/etc/knocknoc/database-ca.crt',
        hosts: [
          { host: '198.18.0.11', port: 5432 },
          { host: '198.18.0.12', port: 5432 },
        ],
      }),
    });
  });

  test('redaction hides the password, or leaves it out', () => {
    expect(redactUrl('postgres://knocknoc:secret@192.0.2.10:5432/knocknoc')).toBe('postgres://knocknoc:****@192.0.2.10:5432/knocknoc');
    expect(urlWithoutPassword('postgres://knocknoc:secret@192.0.2.10:5432/knocknoc')).toBe('postgres://knocknoc@192.0.2.10:5432/knocknoc');
    expect(redactUrl('postgres://knocknoc@h/db')).toBe('postgres://knocknoc@h/db');
    // A raw "/" in the password: the text does not parse (no user), and is masked to its last "@".
    expect(redactUrl('postgres://u:5432/x@h/db')).toBe('postgres://u:****@h/db');
    expect(redactUrl('postgres://u:a,b/c@h1:5432,h2:5432/db')).toBe('postgres://u:****@h1:5432,h2:5432/db');
  });
});
