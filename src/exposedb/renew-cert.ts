// knocker exposedb --renew-cert: a new server certificate from the cluster's CA for the same
// names, reloaded without a restart (the nodes stay connected). stdout carries the one-line result.
import { EXIT, PreflightError } from '../errors.js';
import { readCertificate } from '../postgres/certificates.js';
import { knockerCommand } from '../shared/hint.js';
import { readIfExists } from '../system/files.js';
import type { Plan } from '../system/plan.js';
import { PATHS } from '../system/root.js';
import { requireExposed, requireOpenssl, tlsContext, type ChangeContext } from './context.js';
import { renewStep } from './tls.js';

export async function renewCert(ctx: ChangeContext): Promise<number> {
  const { root, io, log, cluster, run } = ctx;
  requireExposed(ctx);
  await requireOpenssl();
  const tls = await tlsContext(ctx);
  const caText = await readIfExists(tls.files.ca.certFile);
  const current = tls.facts.certFile === tls.files.cert ? await readIfExists(tls.files.cert) : undefined;
  if (!caText || !current || !(await readIfExists(tls.files.ca.keyFile))) {
    throw new PreflightError(
      `${cluster.label} does not present a certificate from the cluster's CA (it uses ${tls.facts.ssl ? tls.facts.certFile : 'no TLS'})`,
      [
        tls.facts.ssl && tls.facts.certFile !== tls.files.cert
          ? "that certificate is not knocker's: renew it where it was issued"
          : `run ${knockerCommand(root, 'exposedb --init')} first`,
      ],
    );
  }
  const info = readCertificate(current, tls.files.cert);
  const hosts = info.altNames.map((n) => n.replace(/^(IP Address|DNS):/, ''));
  const expires = info.notAfter.toISOString().slice(0, 10);
  const plan: Plan = { title: 'Renew the server certificate', steps: [renewStep(tls, info, hosts, () => {})], warnings: [] };
  const notes = [
    `${run.flags.dryRun ? 'Would renew' : 'Renewing'} the certificate of ${cluster.label} for ${hosts.join(', ')} (the current one expires ${expires}):`,
  ];
  if (!(await run.showOrApply(plan, { notes, details: { cluster: cluster.label, hosts, expires, fingerprint: info.fingerprint256 } }))) return EXIT.ok;
  const renewed = readCertificate((await readIfExists(tls.files.cert)) ?? '', tls.files.cert);
  log.info(`exposedb --renew-cert: ${info.fingerprint256} -> ${renewed.fingerprint256}`);
  io.out(
    `Renewed: the server certificate for ${hosts.join(', ')} now expires ${renewed.notAfter.toISOString().slice(0, 10)} (same CA, ${root.path(PATHS.clusterCaCert)}; reloaded, no restart; the nodes stay connected).`,
  );
  return EXIT.ok;
}
