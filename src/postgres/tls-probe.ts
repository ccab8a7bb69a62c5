// What certificate a PostgreSQL server presents, and whether it verifies: PostgreSQL's SSLRequest
// (8 bytes), then a TLS handshake on the same socket, then the connection is closed before any
// login. Used to report what the nodes' verify-full connections will check (exposedb, the
// installer, knocker status) without needing a password.
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { certificateCovers, describeCertificate, type CertificateInfo } from './certificates.js';

export type TlsProbe =
  | { offered: false }
  | {
      offered: true;
      certificate: CertificateInfo;
      /** The certificates the server sent, leaf first (PostgreSQL sends what its ssl_cert_file holds). */
      chain: X509Certificate[];
      /** Signed by the CA given (or a system CA when none was given). */
      chainVerified: boolean;
      /** Why the chain did not verify (OpenSSL's words). */
      chainError?: string;
      /** The certificate names the host asked for (verify-full's second check). */
      hostMatches: boolean;
    };

export interface ProbeOptions {
  /** The CA certificates (PEM) to verify against. */
  ca?: string;
  sourceAddress?: string;
  timeoutMs?: number;
}

// SSLRequest: length 8, then the code 1234 5679.
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

export function probeTls(host: string, port: number, options: ProbeOptions = {}): Promise<TlsProbe> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, ...(options.sourceAddress ? { localAddress: options.sourceAddress } : {}) });
    let secure: tls.TLSSocket | undefined;
    const timer = setTimeout(() => finish(new Error(`no TLS answer from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    const finish = (result: TlsProbe | Error) => {
      clearTimeout(timer);
      secure?.destroy();
      socket.destroy();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    socket.once('error', (error) => finish(error));
    socket.once('connect', () => socket.write(SSL_REQUEST));
    socket.once('data', (reply) => {
      if (reply[0] === 0x4e /* N */) return finish({ offered: false });
      if (reply[0] !== 0x53 /* S */) return finish(new Error(`${host}:${port} did not answer as PostgreSQL does to an SSLRequest`));
      secure = tls.connect({
        socket,
        ca: options.ca,
        rejectUnauthorized: false,
        // The chain alone decides `authorized`; the host is checked below, against the host asked for.
        checkServerIdentity: () => undefined,
        // SNI takes names only (RFC 6066).
        ...(net.isIP(host) ? {} : { servername: host }),
      });
      secure.once('error', (error) => finish(error));
      secure.once('secureConnect', () => {
        const chain: X509Certificate[] = [];
        const seen = new Set<string>();
        for (
          let cert: tls.DetailedPeerCertificate | undefined = secure!.getPeerCertificate(true);
          cert?.raw && !seen.has(cert.fingerprint256);
          cert = cert.issuerCertificate
        ) {
          seen.add(cert.fingerprint256);
          chain.push(new X509Certificate(cert.raw));
        }
        if (!chain[0]) return finish(new Error(`${host}:${port} presented no certificate`));
        const certificate = describeCertificate(chain[0]);
        const error = secure!.authorizationError;
        finish({
          offered: true,
          certificate,
          chain,
          chainVerified: secure!.authorized,
          ...(error ? { chainError: String(error) } : {}),
          hostMatches: certificateCovers(certificate.pem, host),
        });
      });
    });
  });
}

/** One line on what verify-full sees at host:port: "certificate verified for 198.18.0.11, expires 2027-01-04". */
export function describeProbe(probe: TlsProbe, host: string): string {
  if (!probe.offered) return `the server at ${host} does not offer TLS`;
  const expires = probe.certificate.notAfter.toISOString().slice(0, 10);
  if (!probe.chainVerified) return `its certificate (${probe.certificate.subject}) is not signed by the CA given (${probe.chainError ?? 'unverified'})`;
  if (!probe.hostMatches) return `its certificate is for ${probe.certificate.altNames.join(', ') || probe.certificate.subject}, not ${host}`;
  return `certificate verified for ${host}, expires ${expires}`;
}
