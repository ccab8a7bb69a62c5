// The dashboard's /_status probes against a real HTTP server that counts the requests it holds:
// at most 32 are in flight at once (so a probe's latency is the server's, not this process's own
// queue of 200 connections), every server still gets its answer, and a server that never answers
// costs one timeout, not a stall.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, test } from 'vitest';
import { Prober } from '../../src/status/sources.js';

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function listen(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.157', resolve));
  return `127.0.0.157:${(server.address() as AddressInfo).port}`;
}

test('80 servers probed at once: never more than 32 requests in flight, every one answered', async () => {
  let now = 0;
  let most = 0;
  let arrived = 0;
  // Answers are held until 32 are in flight (or every request has come): the overlap is an event,
  // not a hope that requests arriving within 30 ms overlap on a loaded machine.
  const held: Array<() => void> = [];
  const address = await listen((_req, res) => {
    now += 1;
    arrived += 1;
    most = Math.max(most, now);
    held.push(() => {
      now -= 1;
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(
        JSON.stringify({
          status: 'ok',
          server: 'web',
          version: '1.0.0',
          schemaVersion: 1,
          databaseSchemaVersion: 1,
          versionMatch: true,
          database: 'ok',
          uptimeSeconds: 1,
        }),
      );
    });
    if (now >= 32 || arrived === 80)
      setTimeout(() => {
        for (const answer of held.splice(0)) answer();
      }, 30);
  });
  const targets = new Map(Array.from({ length: 80 }, (_, i) => [`web-${i + 1}`, address] as [string, string]));
  const results = await new Prober(() => 1000).probeAll(targets);
  expect(most).toBe(32);
  expect(results.size).toBe(80);
  expect([...results.values()].every((p) => p.http === 200 && p.body?.version === '1.0.0')).toBe(true);
});

test('a server that never answers costs its timeout; the others are answered meanwhile', async () => {
  const hung = await listen(() => {});
  const fine = await listen((_req, res) => res.writeHead(200).end('{"status":"ok"}'));
  // The round ends (the test's own timeout would fail it otherwise) with the hung one timed out.
  const results = await new Prober(() => 1500).probeAll(
    new Map([
      ['hung', hung],
      ['fine', fine],
    ]),
  );
  expect(results.get('hung')).toMatchObject({ http: undefined, error: expect.stringContaining('within 1500 ms') });
  expect(results.get('fine')).toMatchObject({ http: 200 });
});
