// `nixfleet nginx-config`: renders the production nginx config for a control plane (see
// control-plane/nginx-config.ts for the access rules it encodes).
import { join } from 'node:path';
import { EXIT_OK, UsageError, parseCommandArgs, type Command } from './command.ts';
import { writeFileAtomic } from '../protocol/index.ts';
import {
  renderNginxConfig,
  ensureRevocationMaps,
  pkiPaths,
  issuingCaPaths,
  issuingFleet,
  writeCrlChain,
  reloadNginx,
  DEFAULT_TLS_SESSION_CACHE,
} from '../control-plane/index.ts';
import { existsSync, mkdirSync } from 'node:fs';

const command: Command = {
  name: 'nginx-config',
  summary:
    'render the production nginx config (mTLS, per-host authorisation, revocation, ack proxy)',
  help: `Usage: nixfleet nginx-config --tree DIR --pki DIR --listen ADDR:PORT --ack-upstream 127.0.0.1:PORT|unix:PATH
                             [--runtime-dir DIR] [--dashboard DIR] [--workers N] [--out FILE]
                             [--enrol-upstream 127.0.0.1:PORT|unix:PATH --issuing DIR]
                             [--tls-session-cache SIZE|off] [--nginx-pid FILE]

Prints (or writes to --out) an nginx config that serves the control plane's tree (DIR/current, installed
by \`nixfleet cp sync\`):
  - client certificates from the fleet CA required everywhere except /nix-cache/ (Nix cannot present
    one; it checks narinfo signatures itself); the CRL from the PKI directory is checked;
  - revoked certificate serials and hosts refused (DIR/nginx/*.map, written by \`cp sync\` from the
    signed revocations; created empty here if missing);
  - a host (certificate CN, OU=agent) reads its own manifest only, plus shared documents and ack bundles;
  - /dashboard/ for operator certificates (OU=operator) only;
  - POST /acks proxied to the ack endpoint (\`nixfleet cp serve --acks-only\`) with the verified
    identity in X-SSL-Client-* headers (client-sent copies are overwritten);
  - 503 with Retry-After on every route until a verified tree is installed;
  - with --enrol-upstream and --issuing (the enrolment issuing CA, \`nixfleet pki issuing-ca\`): POST
    /enrol proxied to \`nixfleet enrol serve\` (open without a certificate: the token is the credential;
    renewals present their certificate), client certificates accepted from the fleet CA and the issuing
    CA (its client-ca.pem), and both CRLs checked from ISSUING/crl-chain.pem (rewritten here: run this
    again, and reload nginx, after either CRL changes).
Agents resume their last run's TLS session (TLS 1.3) from nginx's shared session cache:
--tls-session-cache SIZE (default ${DEFAULT_TLS_SESSION_CACHE}, ~1 KB per host, so ~128,000 hosts; a full cache
only costs the oldest hosts a full handshake). Why the cache by default: a resumed agent run is then
~1.6 KB on the wire instead of ~2.9 KB with stateless tickets (issue 10's 2 KB target), and nginx spends
less CPU per run. The cache outlives a reload, so its name follows the CA and CRL files: after a CRL change
(pki revoke, a refreshed CRL) run this command again with --nginx-pid, which renders and reloads in one
step and starts an empty cache, so every host's next handshake is checked against the new CRL (a bare
nginx reload applies a new CRL to full handshakes only; the NixOS module re-renders by itself whenever the
CA or CRL file changes). --tls-session-cache off: stateless tickets instead, whose keys every reload
renews. The signed revocations (cp sync) refuse a certificate on every request, resumed or not, either way.
  --nginx-pid FILE  after writing --out, send nginx (its master's pid file) SIGHUP to load it.
With --runtime-dir the output is a complete nginx.conf (pid, logs, temp paths under that directory);
without it, a snippet to include inside an existing http { } block.

PKI files used: ca.crt, server.crt, server.key, crl.pem (from \`nixfleet pki init\`).`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      tree: { type: 'string' },
      pki: { type: 'string' },
      listen: { type: 'string' },
      'ack-upstream': { type: 'string' },
      'runtime-dir': { type: 'string' },
      dashboard: { type: 'string' },
      workers: { type: 'string' },
      out: { type: 'string' },
      'enrol-upstream': { type: 'string' },
      issuing: { type: 'string' },
      'tls-session-cache': { type: 'string' },
      'nginx-pid': { type: 'string' },
    });
    if (values['nginx-pid'] !== undefined && values.out === undefined)
      throw new UsageError(
        '--nginx-pid reloads nginx with the config written by --out: give --out',
      );
    if ((values['enrol-upstream'] === undefined) !== (values.issuing === undefined))
      throw new UsageError('--enrol-upstream and --issuing come together');
    if (!values.tree || !values.pki || !values.listen || !values['ack-upstream'])
      throw new UsageError('--tree, --pki, --listen and --ack-upstream are required');
    if (
      values.workers !== undefined &&
      values.workers !== 'auto' &&
      !/^[1-9][0-9]{0,2}$/.test(values.workers)
    )
      throw new UsageError('--workers: expected a number or "auto"');
    const p = pkiPaths(values.pki);
    for (const f of [p.caCert, p.serverCert, p.serverKey])
      if (!existsSync(f))
        throw new UsageError(
          `${f} is missing (create the PKI with: nixfleet pki init --out ${values.pki})`,
        );
    let trust = { caCert: p.caCert, crl: existsSync(p.crl) ? p.crl : undefined };
    if (values.issuing !== undefined) {
      issuingFleet(values.issuing);
      trust = {
        caCert: issuingCaPaths(values.issuing).clientCaBundle,
        crl: writeCrlChain(values.pki, values.issuing),
      };
    }
    let config: string;
    try {
      config = renderNginxConfig({
        treeDir: values.tree,
        ...trust,
        serverCert: p.serverCert,
        serverKey: p.serverKey,
        enrolUpstream: values['enrol-upstream'],
        listen: values.listen,
        ackUpstream: values['ack-upstream'],
        dashboardDir: values.dashboard,
        runtimeDir: values['runtime-dir'],
        sessionCacheSize: values['tls-session-cache'],
        workerProcesses:
          values.workers === undefined || values.workers === 'auto'
            ? 'auto'
            : Number(values.workers),
      });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    ensureRevocationMaps(values.tree);
    if (values['runtime-dir']) mkdirSync(join(values['runtime-dir'], 'tmp'), { recursive: true });
    if (values.out) writeFileAtomic(values.out, config);
    else process.stdout.write(config);
    // After the write: the reload must read this config (the cache named after the CRL nginx will load).
    if (values['nginx-pid'] !== undefined) reloadNginx(values['nginx-pid']);
    return EXIT_OK;
  },
};
export default command;
