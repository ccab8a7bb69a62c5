// knocknoc.conf as the server reads it: Listen and DatabaseURL are required, TrustedForwarders and
// ServerName have the installer's defaults. Every problem is reported at once with its line; a key
// the server does not know is only a warning (a newer knocker may have written it).
import fs from 'node:fs/promises';
import { CONF_KEYS, KnocknocConf } from '../config/knocknoc-conf.js';
import { DEFAULTS, parseListen, parseServerName, parseTrustedForwarders, serverNameFromHostname, type ListenAddress } from '../config/values.js';
import { didYouMean } from '../config/suggest.js';
import { quoted } from '../shared/printable.js';
import { parseDatabaseUrl, type DatabaseUrl } from '../postgres/url.js';
import { readRegularFileSync, UnreadableFileError } from '../system/files.js';

export interface ServerConfig {
  file: string;
  listen: ListenAddress;
  /** Listen as written in the file, for messages and the registry. */
  listenText: string;
  trustedForwarders: string[];
  databaseUrl: DatabaseUrl;
  serverName: string;
}

export type ConfigResult = { ok: true; config: ServerConfig; warnings: string[] } | { ok: false; problems: string[]; warnings: string[] };

/** knocknoc.conf is a few lines; a bigger file is not one. */
export const MAX_CONF_BYTES = 1024 * 1024;

export async function loadServerConfig(
  file: string,
  hostname: string,
  /** What to do about a missing or unreadable file, in the words of the program reading it. */
  whenUnreadable = 'run `knocker install` to write it, or give its path with --config FILE',
): Promise<ConfigResult> {
  let text: string;
  try {
    text = readRegularFileSync(file, MAX_CONF_BYTES);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      error instanceof UnreadableFileError
        ? error.message.slice(file.length + 1)
        : code === 'ENOENT'
          ? 'no such file'
          : code === 'EACCES'
            ? 'permission denied'
            : code === 'EISDIR'
              ? 'it is a folder'
              : String(code);
    return {
      ok: false,
      problems: [`cannot read the configuration ${file}: ${why} (${whenUnreadable})`],
      warnings: [],
    };
  }
  const result = checkServerConfig(text, file, hostname);
  try {
    const mode = (await fs.stat(file)).mode & 0o777;
    if (mode & 0o077)
      result.warnings.push(`${file} is readable by other users (mode ${mode.toString(8).padStart(4, '0')}) and holds the database password: chmod 600 ${file}`);
  } catch {
    // read above; a vanished file is reported on the next start
  }
  return result;
}

/**
 * knocknoc.conf's text as knocknoc-server reads it: the one check of the file, which the installer
 * also runs on the file it is about to write (a file the server would refuse is never "fine").
 */
export function checkServerConfig(text: string, file: string, hostname: string): ConfigResult {
  const conf = KnocknocConf.parse(text);
  const problems = conf.problems.map((p) => `${file}:${p.line}: ${p.message}`);
  const warnings: string[] = [];
  const seen = new Set<string>();
  for (const key of conf.keys()) {
    if (!(CONF_KEYS as readonly string[]).includes(key)) {
      const hint = didYouMean(key, [...CONF_KEYS]);
      warnings.push(`${file}:${conf.lineOf(key)}: unknown key ${quoted(key)} is ignored${hint ? ` (did you mean ${hint}?)` : ''}`);
    } else if (seen.has(key)) {
      warnings.push(`${file}:${conf.lineOf(key)}: ${key} is given more than once; this last one counts`);
    }
    seen.add(key);
  }
  const at = (key: string) => `${file}:${conf.lineOf(key) ?? '?'}`;
  const required = (key: string): string | undefined => {
    const value = conf.get(key);
    if (value === undefined || value === '') problems.push(`${file}: ${key} is missing`);
    return value || undefined;
  };

  const listenText = required('Listen');
  const listen = listenText === undefined ? undefined : parseListen(listenText);
  if (listen && !listen.ok) problems.push(`${at('Listen')}: Listen: ${listen.error}`);

  const forwardersText = conf.get('TrustedForwarders');
  const forwarders = parseTrustedForwarders(forwardersText ?? DEFAULTS.trustedForwarders);
  if (!forwarders.ok) problems.push(`${at('TrustedForwarders')}: TrustedForwarders: ${forwarders.error}`);

  const urlText = required('DatabaseURL');
  const url = urlText === undefined ? undefined : parseDatabaseUrl(urlText);
  if (url && !url.ok) problems.push(`${at('DatabaseURL')}: DatabaseURL: ${url.error}`);

  const nameText = conf.get('ServerName');
  const name = nameText === undefined ? { ok: true as const, value: serverNameFromHostname(hostname) } : parseServerName(nameText);
  if (!name.ok) problems.push(`${at('ServerName')}: ServerName: ${name.error}`);

  if (problems.length > 0 || !listen?.ok || !forwarders.ok || !url?.ok || !name.ok) return { ok: false, problems, warnings };
  return {
    ok: true,
    config: { file, listen: listen.value, listenText: listenText!, trustedForwarders: forwarders.value, databaseUrl: url.value, serverName: name.value },
    warnings,
  };
}
