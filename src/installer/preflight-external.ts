// Preflight of options 2 and 3: the database elsewhere, each host of a multi-host string on its own,
// its TLS (the CA given, verify-full), the privileges the option needs, and the server name not
// held by a live node. Split from preflight.ts, which runs it with the other checks.
import fs from 'node:fs/promises';
import type pg from 'pg';
import type { ListenAddress } from '../config/values.js';
import { connectSelecting, describeConnectError, isEncrypted, sourceAddressFor, type ConnectOptions } from '../postgres/connect.js';
import { pemCertificates, readCertificate } from '../postgres/certificates.js';
import { atHost, formatHostPort, parseDatabaseUrl, withRootCert, type DatabaseUrl, type HostPort } from '../postgres/url.js';
import { databaseSchemaVersion } from '../schema/index.js';
import { OFFLINE_AFTER_HEARTBEATS, onlineSql } from '../server/registry.js';
import { PATHS } from '../system/root.js';
import type { Answers } from './answers.js';
import type { Check } from '../shared/checks.js';
import type { ExternalFacts, PreflightContext } from './preflight.js';

export function connectOptionsFor(listen: ListenAddress, url: DatabaseUrl): ConnectOptions {
  return { sourceAddress: sourceAddressFor(listen.host, url.host), connectTimeoutMs: 8_000 };
}

/** Largest CA file read (a CA bundle is a few kilobytes). */
const MAX_CA_BYTES = 1024 * 1024;

/** The CA given (a file or PEM text), checked: at least one certificate, every one readable. */
async function readCa(source: string): Promise<{ pem: string; detail: string }> {
  let pem = source;
  if (!source.startsWith('-----BEGIN')) {
    const stat = await fs.stat(source).catch((error: NodeJS.ErrnoException) => {
      throw new Error(`cannot read ${source}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
    });
    if (!stat.isFile()) throw new Error(`${source} is not a regular file`);
    if (stat.size > MAX_CA_BYTES) throw new Error(`${source} is ${stat.size} bytes: too large for a CA certificate file`);
    pem = await fs.readFile(source, 'utf8');
  }
  const certificates = pemCertificates(pem);
  const first = readCertificate(pem, source.startsWith('-----BEGIN') ? 'the CA given' : source);
  for (const other of certificates.slice(1)) readCertificate(other, source);
  const expires = first.notAfter.toISOString().slice(0, 10);
  return {
    pem: `${certificates.join('\n')}\n`,
    detail: `${first.subject}${certificates.length > 1 ? ` (+${certificates.length - 1} more)` : ''}, expires ${expires}${source.startsWith('-----BEGIN') ? '' : ` (${source})`}`,
  };
}

/** What a working connection says about its TLS: what verify-full, verify-ca or the rest checked. */
function tlsDetail(client: pg.Client, url: DatabaseUrl): string {
  if (!isEncrypted(client)) return 'not encrypted (no TLS)';
  const verifies = url.sslmode === 'verify-full' ? 'full' : url.sslmode === 'verify-ca' || (url.sslmode === 'require' && url.sslrootcert) ? 'ca' : 'none';
  if (verifies === 'full') return `TLS, certificate verified for ${url.host}`;
  if (verifies === 'ca') return `TLS, certificate's CA verified (not the host name: sslmode=${url.sslmode})`;
  return `TLS, certificate not verified (sslmode=${url.sslmode}: another server answering on ${url.host} would not be noticed)`;
}

/**
 * A DatabaseURL listing several hosts (libpq's multi-host form): each host asked on its own, so the
 * operator sees which is the primary and which are standbys before anything is written. It must
 * ask for a read-write server (the node writes), exactly one host may be one, and a standby may be
 * down (a warning: the node uses the primary, and reaches the standby once it is promoted).
 */
async function checkHostList(url: DatabaseUrl, options: ConnectOptions, ctx: PreflightContext, checks: Check[], warnings: string[]): Promise<boolean> {
  if (url.targetSessionAttrs !== 'read-write' && url.targetSessionAttrs !== 'primary') {
    checks.push({
      name: 'connection string',
      ok: false,
      detail: `it lists ${url.hosts.length} hosts with target_session_attrs=${url.targetSessionAttrs}: a web node writes, and could settle on a standby`,
      hints: [
        'add target_session_attrs=read-write (libpq tries the hosts in order and takes the first read-write one), e.g. postgres://USER:PASSWORD@HOST1:5432,HOST2:5432/DATABASE?target_session_attrs=read-write',
      ],
    });
    return false;
  }
  const primaries: HostPort[] = [];
  const down: Array<{ at: HostPort; message: string; hints: string[] }> = [];
  for (const at of url.hosts) {
    const one = { ...atHost(url, at), targetSessionAttrs: 'any' as const };
    const name = `database host ${formatHostPort(at)}`;
    try {
      const { client } = await connectSelecting(one, options);
      try {
        const row = (
          await client.query<{ standby: boolean; read_only: string; version: string }>(
            `SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS read_only, current_setting('server_version') AS version`,
          )
        ).rows[0]!;
        if (!row.standby && row.read_only === 'off') primaries.push(at);
        const role = row.standby
          ? 'standby (in recovery, read-only)'
          : row.read_only === 'on'
            ? 'read-only (default_transaction_read_only: a fenced primary?)'
            : 'primary (read-write)';
        checks.push({ name, ok: true, detail: `${role}, PostgreSQL ${row.version}` });
      } finally {
        await client.end().catch(() => {});
      }
    } catch (error) {
      const problem = describeConnectError(error, one);
      ctx.log.warn(`connect to ${formatHostPort(at)} failed: ${problem.reason}`);
      // A refused login is the same on every host: it is the string that is wrong.
      if (problem.reason === 'bad-password' || problem.reason === 'no-database' || problem.reason === 'tls' || problem.reason === 'not-allowed') {
        checks.push({ name, ok: false, detail: problem.message, hints: problem.hints });
        return false;
      }
      down.push({ at, message: problem.message, hints: problem.hints });
    }
  }
  if (primaries.length > 1) {
    checks.push({
      name: 'database hosts',
      ok: false,
      detail: `${primaries.map(formatHostPort).join(' and ')} are all read-write primaries: the list must name one primary and its standbys (two primaries hold two different databases)`,
      hints: ['stop or fence the one that is no longer the primary, or correct the host list'],
    });
    return false;
  }
  if (primaries.length === 0) {
    const first = down[0];
    checks.push({
      name: 'database hosts',
      ok: false,
      detail: `no host of the list is a read-write primary${down.length ? ` (${down.map((d) => d.message).join('; ')})` : ''}`,
      hints: first ? first.hints : ['promote the standby, or start the primary, then run this again'],
    });
    return false;
  }
  for (const d of down) {
    checks.push({ name: `database host ${formatHostPort(d.at)}`, ok: true, detail: `not answering now (${d.message})` });
    warnings.push(
      `database host ${formatHostPort(d.at)} of DatabaseURL does not answer now (${d.message}); the node uses ${formatHostPort(primaries[0]!)} and tries it again when the primary changes`,
    );
  }
  return true;
}

export async function externalFacts(
  answers: Answers,
  listen: ListenAddress,
  ctx: PreflightContext,
  checks: Check[],
  warnings: string[],
): Promise<ExternalFacts | undefined> {
  const given = parseDatabaseUrl(answers.databaseUrl ?? '');
  if (!given.ok) {
    checks.push({ name: 'connection string', ok: false, detail: given.error });
    return undefined;
  }
  // A CA given (or named by sslrootcert) is copied beside knocknoc.conf; DatabaseURL names the copy.
  const copy = ctx.root.path(PATHS.databaseCa);
  const caSource = answers.databaseCa ?? (given.value.sslrootcert !== undefined && given.value.sslrootcert !== copy ? given.value.sslrootcert : undefined);
  let ca: string | undefined;
  if (caSource !== undefined) {
    try {
      const read = await readCa(caSource);
      ca = read.pem;
      checks.push({ name: 'database CA', ok: true, detail: read.detail });
    } catch (error) {
      checks.push({
        name: 'database CA',
        ok: false,
        detail: (error as Error).message,
        hints: ['give the CA certificate file (PEM) that `knocker exposedb --init` names on the primary: --database-ca FILE'],
      });
      return undefined;
    }
  }
  const databaseUrl = ca ? withRootCert(answers.databaseUrl!, copy) : answers.databaseUrl!;
  const url = ca ? (parseDatabaseUrl(databaseUrl) as { ok: true; value: DatabaseUrl }).value : given.value;
  const options = { ...connectOptionsFor(listen, url), ...(ca ? { ca } : {}) };
  if (url.hosts.length > 1 && !(await checkHostList(url, options, ctx, checks, warnings))) return undefined;
  let target = `${url.hosts.map(formatHostPort).join(',')}/${url.database}`;
  let client: pg.Client;
  try {
    // The copy is written by the plan: until then the CA is handed over as it was read.
    const selected = await connectSelecting(url, options);
    client = selected.client;
    if (url.hosts.length > 1) target = `${formatHostPort(selected.at)}/${url.database}`;
  } catch (error) {
    const problem = describeConnectError(error, url);
    ctx.log.warn(`connect to ${target} failed: ${problem.reason}`);
    checks.push({ name: `database ${target}`, ok: false, detail: problem.message, hints: problem.hints });
    return undefined;
  }
  try {
    const version = (
      await client.query<{ server_version: string; num: string }>(
        `SELECT current_setting('server_version') AS server_version, current_setting('server_version_num') AS num`,
      )
    ).rows[0]!;
    checks.push({ name: `database ${target}`, ok: true, detail: `PostgreSQL ${version.server_version}, connected as ${url.user}; ${tlsDetail(client, url)}` });
    if (Number(version.num) < 120000) {
      checks.push({ name: 'PostgreSQL version', ok: false, detail: `${version.server_version} is too old`, hints: ['Knocknoc needs PostgreSQL 12 or newer'] });
      return undefined;
    }
    const schemaVersion = await databaseSchemaVersion(client);
    const sameAsBefore = ctx.existingConf?.get('DatabaseOption') === String(answers.databaseOption) && ctx.existingConf?.get('DatabaseURL') === databaseUrl;
    if (answers.databaseOption === 2) {
      if (schemaVersion !== undefined && !sameAsBefore) {
        checks.push({
          name: 'empty database',
          ok: false,
          detail: `${url.database} already holds a Knocknoc schema (version ${schemaVersion})`,
          hints: ['to add this node to an existing Knocknoc deployment, choose option 3 (web node only)'],
        });
        return undefined;
      }
      try {
        await client.query('BEGIN');
        await client.query('CREATE TABLE knocker_preflight_probe (id integer)');
        checks.push({ name: 'privileges', ok: true, detail: `${url.user} can create tables` });
      } catch (error) {
        checks.push({
          name: 'privileges',
          ok: false,
          detail: `${url.user} cannot create tables in ${url.database}: ${(error as Error).message}`,
          hints: [`grant it, e.g. ALTER DATABASE ${url.database} OWNER TO ${url.user}, or GRANT CREATE ON SCHEMA public TO ${url.user}`],
        });
        return undefined;
      } finally {
        await client.query('ROLLBACK').catch(() => {});
      }
    } else {
      if (schemaVersion === undefined) {
        checks.push({
          name: 'Knocknoc database',
          ok: false,
          detail: `${url.database} holds no Knocknoc schema`,
          hints: ['option 3 joins an existing Knocknoc database; for a new, empty database choose option 2'],
        });
        return undefined;
      }
      checks.push({ name: 'Knocknoc database', ok: true, detail: `schema version ${schemaVersion}` });
      const nameCheck = await checkServerName(client, answers, ctx);
      checks.push(nameCheck);
      if (!nameCheck.ok) return undefined;
      if (schemaVersion > ctx.release.schemaVersion) {
        warnings.push(
          `the database's schema (version ${schemaVersion}) is newer than this release expects (${ctx.release.schemaVersion}): upgrade this node's Knocknoc to match`,
        );
      } else if (schemaVersion < ctx.release.schemaVersion) {
        warnings.push(
          `the database's schema (version ${schemaVersion}) is older than this release (${ctx.release.schemaVersion}); the first upgraded server migrates it`,
        );
      }
    }
    return { kind: 'external', url, databaseUrl, ca, serverVersion: version.server_version, schemaVersion };
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * The registry of a shared database keeps one row per ServerName: a second node with a name an
 * online node holds would hide one of them from `knocker status` and `knocker upgrade`. Host names
 * are often shared (cloned VMs, sandbox roots on one machine), so it is checked before anything.
 */
async function checkServerName(client: pg.Client, answers: Answers, ctx: PreflightContext): Promise<Check> {
  const name = `server name "${answers.serverName}"`;
  const rows = (
    await client.query<{ name: string; listen: string; online: boolean }>(`SELECT name, listen, ${onlineSql('$1')} AS online FROM servers`, [
      OFFLINE_AFTER_HEARTBEATS,
    ])
  ).rows;
  const holder = rows.find((r) => r.name === answers.serverName);
  if (!holder) return { name, ok: true, detail: 'free in the registry' };
  // A re-run on this node: its knocknoc.conf already names it so, at the address the registry shows.
  const ours = ctx.existingConf?.get('ServerName') === answers.serverName && ctx.existingConf?.get('Listen') === holder.listen;
  if (ours) return { name, ok: true, detail: 'this node, already registered' };
  if (!holder.online) return { name, ok: true, detail: `was ${holder.listen}'s, which is offline: this node takes its place in the registry` };
  const taken = new Set(rows.map((r) => r.name));
  let free = 2;
  while (taken.has(`${answers.serverName}-${free}`)) free += 1;
  return {
    name,
    ok: false,
    detail: `the online node at ${holder.listen} already has this name (two nodes with one name would pass for one in knocker status and knocker upgrade)`,
    hints: [`give this node its own name: add --server-name ${answers.serverName}-${free} (or serverName in the answers file)`],
  };
}
