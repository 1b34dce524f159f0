// `nixfleet pki init | issue-host | issue-operator | revoke`: the fleet CA and its client certificates,
// driven through the openssl CLI. The CA key (ca.key, 0600) belongs offline.
import { EXIT_OK, EXIT_REFUSED, UsageError, output, parseCommandArgs, type Command } from './command.ts';
import { initPki, issueHostCert, issueOperatorCert, revokeCert, PkiError, type KeyAlgorithm } from '../control-plane/pki.ts';

async function refusedOnPkiError(json: boolean, fn: () => number): Promise<number> {
  try {
    return fn();
  } catch (e) {
    if (e instanceof PkiError) {
      output(json, { ok: false, error: e.message }, () => `refused: ${e.message}`);
      return EXIT_REFUSED;
    }
    throw e;
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
      out: { type: 'string' }, fleet: { type: 'string' }, algorithm: { type: 'string' }, days: { type: 'string' },
      'server-name': { type: 'string', multiple: true }, json: { type: 'boolean', default: false },
    });
    if (!values.out) throw new UsageError('--out is required');
    const algorithm = (values.algorithm ?? 'ec') as KeyAlgorithm;
    if (algorithm !== 'ec' && algorithm !== 'ed25519') throw new UsageError('--algorithm: expected ec or ed25519');
    if (values.days !== undefined && !/^[0-9]{1,5}$/.test(values.days)) throw new UsageError('--days: expected a number of days');
    const out = values.out;
    return refusedOnPkiError(values.json, () => {
      const p = initPki(out, { algorithm, fleet: values.fleet, days: values.days ? Number(values.days) : undefined, serverNames: values['server-name'] });
      output(values.json, p, () => `created fleet CA in ${out}\n  CA certificate: ${p.caCert}\n  server certificate: ${p.serverCert}\n  keep ${p.caKey} offline`);
      return EXIT_OK;
    });
  },
};

function issueCommand(kind: 'host' | 'operator'): Command {
  return {
    name: `pki issue-${kind}`,
    summary: kind === 'host' ? 'issue a host client certificate (CN = host name, OU=agent)' : 'issue an operator client certificate (OU=operator: dashboard access)',
    help: `Usage: nixfleet pki issue-${kind} --pki DIR --${kind === 'host' ? 'host' : 'name'} NAME [--json]

Writes DIR/${kind}s/NAME.crt and NAME.key and prints the certificate serial (the serial that
revocations.json names to revoke it).`,
    async run(argv) {
      const flag = kind === 'host' ? 'host' : 'name';
      const { values } = parseCommandArgs(argv, { pki: { type: 'string' }, [flag]: { type: 'string' }, json: { type: 'boolean', default: false } });
      const name = values[flag] as string | undefined;
      if (!values.pki || !name) throw new UsageError(`--pki and --${flag} are required`);
      const dir = values.pki as string;
      const json = values.json as boolean;
      return refusedOnPkiError(json, () => {
        const c = kind === 'host' ? issueHostCert(dir, name) : issueOperatorCert(dir, name);
        output(json, c, () => `issued ${kind} certificate for ${name}: serial ${c.serial}\n  ${c.certPath}\n  ${c.keyPath}`);
        return EXIT_OK;
      });
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
the control plane refuse it, add the serial to revocations.json in the next signed release.`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { pki: { type: 'string' }, cert: { type: 'string' }, json: { type: 'boolean', default: false } });
    if (!values.pki || !values.cert) throw new UsageError('--pki and --cert are required');
    const dir = values.pki;
    const cert = values.cert;
    return refusedOnPkiError(values.json, () => {
      const serial = revokeCert(dir, cert);
      output(values.json, { revoked: serial }, () => `revoked serial ${serial}; CRL updated (${dir}/crl.pem)`);
      return EXIT_OK;
    });
  },
};
