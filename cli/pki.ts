// `nixfleet pki init | issue-host | issue-operator | revoke | renew | list`: the fleet CA and its client
// certificates, driven through the openssl CLI. The CA key (ca.key, 0600) belongs offline. Every command
// on an existing PKI directory warns on stderr about certificates expiring within 30 days.
import {
  EXIT_OK,
  EXIT_REFUSED,
  UsageError,
  output,
  parseCommandArgs,
  type Command,
} from './command.ts';
import {
  initPki,
  issueHostCert,
  issueOperatorCert,
  revokeCert,
  renewCert,
  listCerts,
  listEnrolmentCerts,
  expiringCerts,
  exportPkcs12,
  initIssuingCa,
  PkiError,
  EXPIRY_WARNING_DAYS,
  type CertInfo,
  type KeyAlgorithm,
} from '../control-plane/index.ts';

function daysLeft(c: CertInfo, now: number): number {
  return Math.floor((c.expiresAt - now) / 86_400_000);
}

function expiryLine(c: CertInfo, now: number): string {
  const d = daysLeft(c, now);
  const expiry =
    d < 0 || c.expiresAt <= now ? 'EXPIRED' : `expires in ${d} day${d === 1 ? '' : 's'}`;
  return `${c.file} (${c.subject}, serial ${c.serial}) ${expiry} on ${c.notAfter}`;
}

/** stderr, so --json output on stdout stays one document. A PKI that cannot be listed says nothing here. */
function warnExpiring(dir: string | undefined): void {
  if (dir === undefined) return;
  let certs: CertInfo[];
  try {
    certs = listCerts(dir);
  } catch {
    return;
  }
  const now = Date.now();
  for (const c of expiringCerts(certs, EXPIRY_WARNING_DAYS, now)) {
    process.stderr.write(
      `warning: ${expiryLine(c, now)}; renew it: nixfleet pki renew --pki ${dir} --cert ${dir}/${c.file}\n`,
    );
  }
}

function parseDays(v: string | undefined, flag = '--days'): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]{1,5}$/.test(v) || Number(v) < 1)
    throw new UsageError(`${flag}: expected a number of days (1-99999)`);
  return Number(v);
}

async function refusedOnPkiError(
  json: boolean,
  fn: () => number,
  pkiDir?: string,
): Promise<number> {
  try {
    return fn();
  } catch (e) {
    if (e instanceof PkiError) {
      output(json, { ok: false, error: e.message }, () => `refused: ${e.message}`);
      return EXIT_REFUSED;
    }
    throw e;
  } finally {
    warnExpiring(pkiDir);
  }
}

export const pkiInit: Command = {
  name: 'pki init',
  summary: 'create the fleet CA, an empty CRL and the control plane server certificate',
  help: `Usage: nixfleet pki init --out DIR [--fleet NAME] [--algorithm ec|ed25519] [--days N] [--server-name NAME ...] [--json]

Creates DIR/ca.key (0600, keep it offline), ca.crt, crl.pem, revoked-serials.txt and server.crt/key
(subject alternative names: --server-name, default localhost and 127.0.0.1). Keys are ECDSA P-256 by
default. Refuses to overwrite an existing CA.`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      out: { type: 'string' },
      fleet: { type: 'string' },
      algorithm: { type: 'string' },
      days: { type: 'string' },
      'server-name': { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
    });
    if (!values.out) throw new UsageError('--out is required');
    const algorithm = (values.algorithm ?? 'ec') as KeyAlgorithm;
    if (algorithm !== 'ec' && algorithm !== 'ed25519')
      throw new UsageError('--algorithm: expected ec or ed25519');
    if (values.days !== undefined && !/^[0-9]{1,5}$/.test(values.days))
      throw new UsageError('--days: expected a number of days');
    const out = values.out;
    return refusedOnPkiError(values.json, () => {
      const p = initPki(out, {
        algorithm,
        fleet: values.fleet,
        days: values.days ? Number(values.days) : undefined,
        serverNames: values['server-name'],
      });
      output(
        values.json,
        p,
        () =>
          `created fleet CA in ${out}\n  CA certificate: ${p.caCert}\n  server certificate: ${p.serverCert}\n  keep ${p.caKey} offline`,
      );
      return EXIT_OK;
    });
  },
};

function issueCommand(kind: 'host' | 'operator'): Command {
  const nameFlag = kind === 'host' ? 'host' : 'name';
  const p12Flags = kind === 'operator' ? ' [--p12 FILE [--p12-password-file F]]' : '';
  return {
    name: `pki issue-${kind}`,
    summary:
      kind === 'host'
        ? 'issue a host client certificate (CN = host name, OU=agent)'
        : 'issue an operator client certificate (OU=operator: dashboard access)',
    help: `Usage: nixfleet pki issue-${kind} --pki DIR --${nameFlag} NAME [--days N]${p12Flags} [--json]

Writes DIR/${kind}s/NAME.crt and NAME.key and prints the certificate serial (the serial that
revocations.json names to revoke it). --days: validity (default: the CA's, 825).${
      kind === 'operator'
        ? `
--p12 FILE also writes a PKCS#12 bundle (certificate, key and fleet CA; 0600) to import into a browser,
encrypted with the first line of --p12-password-file (without it: an empty password).`
        : ''
    }`,
    async run(argv) {
      const flag = kind === 'host' ? 'host' : 'name';
      const { values } = parseCommandArgs(argv, {
        pki: { type: 'string' },
        [flag]: { type: 'string' },
        days: { type: 'string' },
        json: { type: 'boolean', default: false },
        ...(kind === 'operator'
          ? { p12: { type: 'string' as const }, 'p12-password-file': { type: 'string' as const } }
          : {}),
      });
      const v = values as Record<string, string | boolean | undefined>;
      const name = v[flag] as string | undefined;
      if (!values.pki || !name) throw new UsageError(`--pki and --${flag} are required`);
      const dir = values.pki as string;
      const json = values.json as boolean;
      const days = parseDays(values.days as string | undefined);
      const p12 = v['p12'] as string | undefined;
      const p12Password = v['p12-password-file'] as string | undefined;
      if (p12Password !== undefined && p12 === undefined)
        throw new UsageError('--p12-password-file needs --p12 FILE');
      return refusedOnPkiError(
        json,
        () => {
          const c =
            kind === 'host'
              ? issueHostCert(dir, name, { days })
              : issueOperatorCert(dir, name, { days });
          const bundle = p12 === undefined ? null : exportPkcs12(dir, c, p12, p12Password);
          output(json, { ...c, ...(bundle ? { p12: bundle } : {}) }, () =>
            [
              `issued ${kind} certificate for ${name}: serial ${c.serial}`,
              `  ${c.certPath}`,
              `  ${c.keyPath}`,
              ...(bundle ? [`  PKCS#12 bundle for the browser: ${bundle}`] : []),
            ].join('\n'),
          );
          return EXIT_OK;
        },
        dir,
      );
    },
  };
}

export const pkiIssueHost = issueCommand('host');
export const pkiIssueOperator = issueCommand('operator');

export const pkiRevoke: Command = {
  name: 'pki revoke',
  summary: 'revoke a client certificate (CRL + revoked serial list)',
  help: `Usage: nixfleet pki revoke --pki DIR --cert FILE [--json]

Marks the certificate revoked in the CA database, regenerates DIR/crl.pem and DIR/revoked-serials.txt and
moves the certificate and key aside (NAME.revoked-SERIAL.crt) so the name can be issued again. To make
the control plane refuse it, add the serial to revocations.json in the next signed release. nginx applies
the new CRL once \`nixfleet nginx-config ... --nginx-pid FILE\` has rendered its config again and reloaded
it (the NixOS control-plane module does so by itself when crl.pem changes): a bare reload would leave the
certificate's sessions in nginx's TLS session cache resumable.`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      pki: { type: 'string' },
      cert: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (!values.pki || !values.cert) throw new UsageError('--pki and --cert are required');
    const dir = values.pki;
    const cert = values.cert;
    return refusedOnPkiError(
      values.json,
      () => {
        const serial = revokeCert(dir, cert);
        output(
          values.json,
          { revoked: serial },
          () =>
            `revoked serial ${serial}; CRL updated (${dir}/crl.pem): apply it with nixfleet nginx-config ... --nginx-pid FILE`,
        );
        return EXIT_OK;
      },
      dir,
    );
  },
};

export const pkiRenew: Command = {
  name: 'pki renew',
  summary: 'renew a certificate (same name; same key unless --new-key)',
  help: `Usage: nixfleet pki renew --pki DIR --cert FILE [--days N] [--new-key] [--json]

Issues a new certificate for the same subject (the server's with the same subject alternative names)
and the same key, so only the .crt has to be redeployed; --new-key also replaces the key. The old
certificate is kept as NAME.renewed-SERIAL.crt and stays valid until it expires (revoke it to end it
sooner, e.g. after --new-key because the old key was exposed). The CA itself is not renewed here.`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      pki: { type: 'string' },
      cert: { type: 'string' },
      days: { type: 'string' },
      'new-key': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    });
    if (!values.pki || !values.cert) throw new UsageError('--pki and --cert are required');
    const dir = values.pki;
    const cert = values.cert;
    const days = parseDays(values.days);
    return refusedOnPkiError(
      values.json,
      () => {
        const c = renewCert(dir, cert, { days, newKey: values['new-key'] });
        output(
          values.json,
          c,
          () =>
            `renewed ${c.name}: new serial ${c.serial}${values['new-key'] ? ' with a new key' : ' (same key)'}\n  ${c.certPath}`,
        );
        return EXIT_OK;
      },
      dir,
    );
  },
};

export const pkiList: Command = {
  name: 'pki list',
  summary: 'list the certificates of a PKI directory with their expiry',
  help: `Usage: nixfleet pki list --pki DIR [--issuing DIR] [--enrol-state DIR] [--expiring-within DAYS] [--json]

Lists the CA, server, host and operator certificates in use (not the revoked or renewed copies set
aside) with serial and expiry. --issuing adds the enrolment issuing CA, --enrol-state the newest
certificate the enrolment endpoint issued to each host (\`nixfleet enrol serve --state DIR\`; agents
renew theirs at 2/3 of the lifetime, so one close to expiry names a host that stopped renewing).
--expiring-within: only those expiring within DAYS (expired included); exit 1 when any is listed, so a
timer can alert on it.`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      pki: { type: 'string' },
      issuing: { type: 'string' },
      'enrol-state': { type: 'string' },
      'expiring-within': { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (!values.pki) throw new UsageError('--pki is required');
    const dir = values.pki;
    const within =
      values['expiring-within'] === undefined
        ? undefined
        : parseDays(values['expiring-within'], '--expiring-within');
    return refusedOnPkiError(
      values.json,
      () => {
        const now = Date.now();
        const all = [
          ...listCerts(dir),
          ...listEnrolmentCerts(values.issuing, values['enrol-state']),
        ];
        const certs = within === undefined ? all : expiringCerts(all, within, now);
        output(
          values.json,
          certs.map((c) => ({
            ...c,
            expiresAt: new Date(c.expiresAt).toISOString(),
            daysLeft: daysLeft(c, now),
          })),
          () =>
            certs.length === 0
              ? `no certificates${within === undefined ? '' : ` expiring within ${within} days`}`
              : certs.map((c) => expiryLine(c, now)).join('\n'),
        );
        return within !== undefined && certs.length > 0 ? EXIT_REFUSED : EXIT_OK;
      },
      dir,
    );
  },
};

export const pkiIssuingCa: Command = {
  name: 'pki issuing-ca',
  summary:
    'create the enrolment issuing CA (client certificates of this fleet only), signed by the fleet CA',
  help: `Usage: nixfleet pki issuing-ca --pki DIR --out DIR [--days N] [--json]

Creates the online CA of the enrolment endpoint (\`nixfleet enrol serve --issuing DIR\`), signed by the
fleet CA of --pki (recorded in its database: \`pki revoke --cert OUT/ca.crt\` revokes it). Its certificate
limits it to what enrolment needs: no sub-CAs (pathlen 0), client authentication only (extended key
usage), subjects only under O=<fleet>, OU=agent (name constraints: no operator certificates, no other
fleet), no IP addresses and DNS names only under <fleet>.nixfleet.invalid (no server certificates).
Copy OUT to the control plane host (OUT/ca.key is its only signing key there); the fleet CA key stays
offline. OUT/client-ca.pem (fleet CA + issuing CA) is what nginx verifies client certificates against.
Default validity 90 days: create a new one before it ends.`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      pki: { type: 'string' },
      out: { type: 'string' },
      days: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (!values.pki || !values.out) throw new UsageError('--pki and --out are required');
    const days = parseDays(values.days);
    const out = values.out;
    return refusedOnPkiError(
      values.json,
      () => {
        const p = initIssuingCa(values.pki!, out, days === undefined ? {} : { days });
        output(
          values.json,
          { ok: true, ...p },
          () => `created the enrolment issuing CA in ${p.dir}`,
        );
        return EXIT_OK;
      },
      values.pki,
    );
  },
};
