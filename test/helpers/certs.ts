// A self-signed certificate for a test (its own CA), as `openssl req -x509` makes it: the argv, so
// the same command serves on this machine (execa) and inside a booted host (Host.exec).
/** `ec`: a P-256 key (as knocker's own certificates have), else RSA 2048. */
export function selfSignedArgs(options: { cn: string; san?: string; days: number; keyOut: string; certOut: string; ec?: boolean }): string[] {
  return [
    'openssl',
    'req',
    '-x509',
    '-newkey',
    ...(options.ec ? ['ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['rsa:2048']),
    '-nodes',
    '-days',
    String(options.days),
    '-subj',
    `/CN=${options.cn}`,
    ...(options.san ? ['-addext', `subjectAltName=${options.san}`] : []),
    '-keyout',
    options.keyOut,
    '-out',
    options.certOut,
  ];
}
