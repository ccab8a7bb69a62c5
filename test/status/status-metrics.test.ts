// Metrics an operator can scrape, read with a Prometheus text-format parser (not by string search):
// `knocker status --format prometheus` (stdout, or a textfile for node_exporter written atomically)
// and HAProxy's own exporter, which `knocker haproxy setup` turns on on a loopback-only listener.
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { execa } from 'execa';
import fc from 'fast-check';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { expect, test } from 'vitest';
import { readSettings } from '../../src/haproxy/config.js';
import { escapeLabelValue } from '../../src/status/prometheus.js';
import { PATHS } from '../../src/system/root.js';
import { knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { sharedDatabase } from '../helpers/server.js';
import { startStatusCluster } from '../helpers/status.js';

const HOSTS = ['127.7.0.11', '127.7.0.12'];
const HAPROXY_HOST = '127.7.0.15';
const db = sharedDatabase({ host: '127.7.0.10', allow: HOSTS });
const newRoot = useRoots();

type Families = ReturnType<typeof parsePrometheusTextFormat>;

function value(families: Families, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.find((f) => f.name === name);
  const sample = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return sample?.value === undefined ? undefined : Number(sample.value);
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { timeout: 5_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

test("status --format prometheus and HAProxy's exporter give what the dashboard knows, parsed as Prometheus would", async () => {
  const { root } = await startStatusCluster({ root: await newRoot(), hosts: HOSTS, haproxyHost: HAPROXY_HOST, databaseUrl: db.url });

  const scraped = await knocker(['status', '--format', 'prometheus', '--root', root.dir]);
  expect(scraped.exitCode).toBe(0);
  const families = parsePrometheusTextFormat(scraped.stdout);
  expect(value(families, 'knocker_status_exit_code')).toBe(0);
  expect(value(families, 'knocker_servers')).toBe(2);
  expect(value(families, 'knocker_servers_healthy')).toBe(2);
  for (const server of ['web-1', 'web-2']) {
    expect(value(families, 'knocker_server_healthy', { server })).toBe(1);
    expect(value(families, 'knocker_server_version_match', { server })).toBe(1);
    expect(value(families, 'knocker_server_health', { server, health: 'ok' })).toBe(1);
    expect(value(families, 'knocker_server_health', { server, health: 'fail' })).toBe(0);
    expect(value(families, 'knocker_server_haproxy_state', { server, state: 'UP' })).toBe(1);
    expect(value(families, 'knocker_server_status_http_code', { server })).toBe(200);
  }
  expect(value(families, 'knocker_database_up')).toBe(1);
  expect(value(families, 'knocker_database_primary')).toBe(1);
  for (const source of ['registry', 'probes', 'haproxy', 'database']) expect(value(families, 'knocker_source_up', { source })).toBe(1);
  for (const family of families) expect(family.type).toBe('GAUGE');

  // A textfile for node_exporter's collector directory: written whole, nothing on stdout.
  const textfile = path.join(root.dir, 'textfile', 'knocker.prom');
  const written = await knocker(['status', '--format', 'prometheus', '--output', textfile, '--root', root.dir]);
  expect(written.exitCode).toBe(0);
  expect(written.stdout).toBe('');
  expect(written.stderr).toMatch(/written to .*knocker\.prom/);
  expect(value(parsePrometheusTextFormat(await fs.readFile(textfile, 'utf8')), 'knocker_servers_healthy')).toBe(2);
  expect((await fs.stat(textfile)).mode & 0o777).toBe(0o644);
  expect((await fs.readdir(path.dirname(textfile))).filter((f) => f.endsWith('.tmp'))).toEqual([]);

  // HAProxy's own exporter, on loopback (on the HAProxy address of this sandbox host).
  const settings = readSettings(await fs.readFile(root.path(PATHS.haproxyConf), 'utf8'));
  expect(settings.kind).toBe('knocker');
  const metrics = settings.kind === 'knocker' ? settings.settings.metrics : undefined;
  expect(metrics?.host).toBe(HAPROXY_HOST);
  // HAProxy takes the configuration without a warning.
  const checked = await execa('haproxy', ['-c', '-f', root.path(PATHS.haproxyConf)], { reject: false, all: true });
  expect(checked.exitCode, checked.all).toBe(0);
  // (Under a sandbox root the state file is written only at the first reload or stop: not a finding.)
  const warnings = String(checked.all)
    .split('\n')
    .filter((line) => /\[(WARNING|ALERT)\]/.test(line) && !line.includes('server state file'));
  expect(warnings).toEqual([]);
  const reply = await get(`http://${metrics!.host}:${metrics!.port}/metrics`);
  expect(reply.status).toBe(200);
  const haproxy = parsePrometheusTextFormat(reply.body);
  for (const server of ['web-1', 'web-2']) expect(value(haproxy, 'haproxy_server_status', { proxy: 'web_nodes', server, state: 'UP' })).toBe(1);
  expect(value(haproxy, 'haproxy_backend_active_servers', { proxy: 'web_nodes' })).toBe(2);

  // --no-metrics takes it away again; misuse is exit 2 and changes nothing.
  expect((await knocker(['haproxy', 'setup', '--root', root.dir, '--no-metrics', '--metrics-bind', '127.7.0.15:9999'])).exitCode).toBe(2);
  expect((await knocker(['status', '--json', '--format', 'prometheus', '--root', root.dir])).exitCode).toBe(2);
  const off = await knocker(['haproxy', 'setup', '--root', root.dir, '--no-metrics']);
  expect(off.exitCode).toBe(0);
  const after = readSettings(await fs.readFile(root.path(PATHS.haproxyConf), 'utf8'));
  expect(after.kind === 'knocker' && after.settings.metrics).toBeFalsy();
  await expect(get(`http://${metrics!.host}:${metrics!.port}/metrics`)).rejects.toThrow(/ECONNREFUSED/);

  // Bound elsewhere: said loudly, since the exporter has no authentication.
  const wide = await knocker(['haproxy', 'setup', '--root', root.dir, '--metrics-bind', `0.0.0.0:${metrics!.port}`, '--dry-run']);
  expect(wide.exitCode).toBe(0);
  expect(wide.stdout + wide.stderr).toMatch(/no authentication/);
});

test('a label value from outside (a registry name) stays one label value, whatever it holds', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (name) => {
      const text = `# TYPE knocker_server_healthy gauge\nknocker_server_healthy{server="${escapeLabelValue(name)}"} 1\n`;
      const families = parsePrometheusTextFormat(text);
      expect(families).toHaveLength(1);
      expect(families[0]!.metrics).toHaveLength(1);
      expect(families[0]!.metrics[0]!.labels?.server).toBe(name);
    }),
    { numRuns: 300 },
  );
});
