// TrustedForwarders: X-Forwarded-For is believed only from a trusted proxy, read right to left;
// the client address it yields is shown on the page and logged with each request.
import { describe, expect, test } from 'vitest';
import { clientAddress, TrustedForwarders } from '../../src/server/client-address.js';
import { request, sharedDatabase, startServer } from '../helpers/server.js';

describe('a node behind a proxy', () => {
  const db = sharedDatabase({ allow: ['127.0.0.2'] });

  const clientOnPage = (body: string) => /<span id="client">([^<]*)<\/span>/.exec(body)?.[1];

  test('X-Forwarded-For from an untrusted peer is ignored; from a trusted one it is used', async () => {
    // The proxy is 127.0.0.3; 127.0.0.4 is some other client on the network.
    const node = await startServer({ host: '127.0.0.2', databaseUrl: db.url, name: 'web-1', trustedForwarders: '127.0.0.3/32, 10.0.0.0/8' });

    const spoofed = await request(node.url('/'), { localAddress: '127.0.0.4', headers: { 'X-Forwarded-For': '203.0.113.7' } });
    expect(clientOnPage(spoofed.body)).toBe('127.0.0.4');

    const proxied = await request(node.url('/'), { localAddress: '127.0.0.3', headers: { 'X-Forwarded-For': '203.0.113.7' } });
    expect(clientOnPage(proxied.body)).toBe('203.0.113.7');

    // Through a second trusted proxy (10.1.2.3): the first untrusted hop from the right is the
    // client; what the client wrote itself further left (198.51.100.9) is not believed.
    const chained = await request(node.url('/'), { localAddress: '127.0.0.3', headers: { 'X-Forwarded-For': '198.51.100.9, 192.0.2.44, 10.1.2.3' } });
    expect(clientOnPage(chained.body)).toBe('192.0.2.44');

    const direct = await request(node.url('/_status'), { localAddress: '127.0.0.4' });
    expect(direct.status).toBe(200);

    await expect.poll(() => node.stdout(), { timeout: 5_000 }).toMatch(/127\.0\.0\.4 "GET \/_status HTTP\/1\.1" 200/);
    const log = node.stdout();
    expect(log).toMatch(/HTTP {2}127\.0\.0\.4 "GET \/ HTTP\/1\.1" 200 /);
    expect(log).toMatch(/HTTP {2}203\.0\.113\.7 via 127\.0\.0\.3 "GET \/ HTTP\/1\.1" 200 /);
    expect(log).toMatch(/HTTP {2}192\.0\.2\.44 via 127\.0\.0\.3 "GET \/ HTTP\/1\.1" 200 /);
    expect(log).not.toMatch(/HTTP {2}203\.0\.113\.7 via 127\.0\.0\.4/);
  });
});

describe('clientAddress', () => {
  const trusted = new TrustedForwarders(['127.0.0.1/32', '10.0.0.0/8', 'fd00::/8']);

  test('the peer itself when it is not a trusted proxy, whatever it claims', () => {
    expect(clientAddress('192.0.2.1', '203.0.113.7', trusted)).toBe('192.0.2.1');
    expect(clientAddress('::ffff:192.0.2.1', '203.0.113.7', trusted)).toBe('192.0.2.1');
  });

  test('walks right to left through trusted proxies, several headers read as one list', () => {
    expect(clientAddress('127.0.0.1', '203.0.113.7', trusted)).toBe('203.0.113.7');
    expect(clientAddress('::ffff:127.0.0.1', ['198.51.100.1', '203.0.113.7, 10.0.0.5'], trusted)).toBe('203.0.113.7');
    expect(clientAddress('fd00::1', '2001:db8::1', trusted)).toBe('2001:db8::1');
    // Every hop trusted: the leftmost is as far as anyone can tell.
    expect(clientAddress('127.0.0.1', '10.0.0.9, 10.0.0.5', trusted)).toBe('10.0.0.9');
  });

  test('ports and brackets are dropped; a hop that is not an address stops the walk', () => {
    expect(clientAddress('127.0.0.1', '203.0.113.7:51234', trusted)).toBe('203.0.113.7');
    expect(clientAddress('127.0.0.1', '[2001:db8::2]:443', trusted)).toBe('2001:db8::2');
    expect(clientAddress('127.0.0.1', '203.0.113.7, unknown', trusted)).toBe('127.0.0.1');
    expect(clientAddress('127.0.0.1', '203.0.113.7, 0x7f.1', trusted)).toBe('127.0.0.1');
    expect(clientAddress('127.0.0.1', '', trusted)).toBe('127.0.0.1');
  });
});
