// `nixfleet enrol token | withdraw | serve`: host enrolment with one-time tokens (docs/architecture.md,
// "Enrolment"). `token` and `withdraw` run on the operator's side with the trust root's enrolment
// key(s): they verify CI's tree against the pinned root (the host and its key come from the signed
// release), sign the next enrolment-<n>.json and write it into the tree; CI's next refresh (or publish)
// binds it into timestamp.json, and the endpoint accepts the token once `cp sync` installed that.
// `serve` runs the enrolment endpoint behind nginx.
import { chmodSync } from 'node:fs';
import {
  EXIT_OK,
  UsageError,
  output,
  parseCommandArgs,
  parseNow,
  parseTimeOption,
  type Command,
} from './command.ts';
import { reportPublisherError } from './publish.ts';
import { pinnedRootOption } from './root-option.ts';
import { hostOf, treeOption } from './tree-option.ts';
import {
  envelopeBytes,
  keyIdOf,
  readPrivateKey,
  unb64,
  writeFileAtomic,
  MAX_TOKEN_LIFETIME_SECONDS,
  readEnrolmentToken,
} from '../protocol/index.ts';
import { mintEnrolmentToken, withdrawEnrolmentNonces } from '../publisher/index.ts';
import { startEnrolmentEndpoint } from '../control-plane/index.ts';
import type { VerifiedRelease } from '../read-side/index.ts';
import { readFileSync } from 'node:fs';

const SIGN_HELP = `  --tree DIR             CI's published tree (enrolment-<n>.json is written here)
  --root FILE            the pinned trust root (root/1.json): the tree is verified against it
  --enrolment-key FILE   enrolment private key (repeat to meet the root's enrolment threshold)
  --now ISO              signing time (default: the clock)
  --json                 print the result as JSON

The change takes effect when CI's next \`nixfleet refresh\` (or publish) binds the new enrolment-<n>.json
into timestamp.json and \`nixfleet cp sync\` installs it on the control plane.`;

async function loadTree(
  values: Record<string, string | boolean | string[] | undefined>,
  now: number,
): Promise<VerifiedRelease> {
  const r = await treeOption(values, now);
  if ('failure' in r) throw new UsageError(r.failure);
  return r.release;
}

function enrolmentKeys(values: { 'enrolment-key'?: string[] }) {
  const files = values['enrolment-key'] ?? [];
  if (files.length === 0) throw new UsageError('at least one --enrolment-key FILE is required');
  return files.map((f) => readPrivateKey(f));
}

/** The host's key id in the signed release (the token is bound to it). */
function hostKeyIdOf(release: VerifiedRelease, host: string): string {
  // The verified walk binds each plan's hosts to the index's placement: the channel's plan names the host.
  const { channel } = hostOf(release, host);
  return keyIdOf(unb64(release.plans[channel]!.hosts[host]!.hostKey));
}

/** `--expires`: an ISO time, or a duration from now (90m, 24h, 3d). */
function parseExpires(text: string | undefined, now: number): number {
  if (text === undefined)
    throw new UsageError('--expires is required (e.g. 24h, 3d, or an ISO time)');
  const m = /^([1-9][0-9]{0,5})([mhd])$/.exec(text);
  if (m)
    return now + Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'];
  return parseTimeOption('--expires', text);
}

export const enrolToken: Command = {
  name: 'enrol token',
  summary: 'mint a one-time enrolment token for a host (enrolment key of the trust root)',
  help: `Usage: nixfleet enrol token --host H --expires T --tree DIR --root FILE --enrolment-key FILE...
                         [--out FILE] [--now ISO] [--json]

Mints a one-time token for host H: a document signed by the enrolment role, bound to the fleet, the
host, the host key the signed release lists for it (useless for any other key), a random nonce and
the expiry T (ISO time or 90m / 24h / 3d; at most ${MAX_TOKEN_LIFETIME_SECONDS / 86_400} days). The nonce is added to the next
enrolment-<n>.json. Give the token file to the host as the agent's enrolmentTokenFile (0600: it is a
bearer secret until used). Withdraw it with \`nixfleet enrol withdraw\`.

  --host H               the host (must be in the current signed release)
  --expires T            expiry
  --out FILE             write the token here (0600) instead of stdout
${SIGN_HELP}

Exit: 0 minted, 1 refused (keys below the threshold, no enrolment role), 2 usage or I/O.`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      tree: { type: 'string' },
      root: { type: 'string' },
      'enrolment-key': { type: 'string', multiple: true },
      host: { type: 'string' },
      expires: { type: 'string' },
      out: { type: 'string' },
      now: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    const now = parseNow(values.now);
    if (!values.host) throw new UsageError('--host is required');
    const expires = parseExpires(values.expires, now);
    const keys = enrolmentKeys(values);
    const release = await loadTree(values, now);
    try {
      const r = mintEnrolmentToken({
        treeDir: values.tree!,
        root: release.root,
        keys,
        now,
        host: values.host,
        hostKeyId: hostKeyIdOf(release, values.host),
        expires,
      });
      const bytes = envelopeBytes(r.token);
      if (values.out) {
        writeFileAtomic(values.out, bytes);
        chmodSync(values.out, 0o600);
      }
      const summary = {
        ok: true,
        host: values.host,
        nonce: r.token.signed.nonce,
        expires: r.token.signed.expires,
        version: r.version,
        file: r.file,
        ...(values.out ? { out: values.out } : { token: r.token }),
      };
      if (!values.out && !values.json) process.stdout.write(bytes.toString('utf8') + '\n');
      else
        output(values.json, summary, () =>
          [
            `minted a token for ${values.host} (nonce ${r.token.signed.nonce.slice(0, 16)}.., expires ${r.token.signed.expires}) into ${values.out}`,
            `wrote ${r.file} (v${r.version}); it acts after CI's next refresh and cp sync`,
          ].join('\n'),
        );
      return EXIT_OK;
    } catch (e) {
      return reportPublisherError('enrol token', e, values.json);
    }
  },
};

export const enrolWithdraw: Command = {
  name: 'enrol withdraw',
  summary: 'withdraw enrolment tokens (by token file, nonce or host) before they are used',
  help: `Usage: nixfleet enrol withdraw (--token FILE | --nonce N... | --host H) --tree DIR --root FILE
                            --enrolment-key FILE... [--now ISO] [--json]

Signs the next enrolment-<n>.json without the given nonces (all of host H's with --host). Once bound by
the timestamp and installed, the endpoint refuses those tokens (NonceRefused).

${SIGN_HELP}`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      tree: { type: 'string' },
      root: { type: 'string' },
      'enrolment-key': { type: 'string', multiple: true },
      token: { type: 'string' },
      nonce: { type: 'string', multiple: true },
      host: { type: 'string' },
      now: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    const now = parseNow(values.now);
    const nonces = [...(values.nonce ?? [])];
    if (values.token)
      nonces.push(readEnrolmentToken(readFileSync(values.token), values.token).signed.nonce);
    if (nonces.length === 0 && values.host === undefined)
      throw new UsageError('give --token FILE, --nonce N or --host H');
    const keys = enrolmentKeys(values);
    const release = await loadTree(values, now);
    try {
      const r = withdrawEnrolmentNonces({
        treeDir: values.tree!,
        root: release.root,
        keys,
        now,
        nonces,
        ...(values.host === undefined ? {} : { host: values.host }),
      });
      output(
        values.json,
        { ok: true, ...r },
        () =>
          `withdrew ${r.withdrawn.map((n) => `${n.host} ${n.nonce.slice(0, 16)}..`).join(', ')}; wrote ${r.file} (v${r.version})`,
      );
      return EXIT_OK;
    } catch (e) {
      return reportPublisherError('enrol withdraw', e, values.json);
    }
  },
};

function parseInt(flag: string, text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > max)
    throw new UsageError(`${flag}: expected 0-${max}, got ${JSON.stringify(text)}`);
  return Number(text);
}

const jsonLog = (event: Record<string, unknown>) =>
  process.stderr.write(
    JSON.stringify({ time: new Date().toISOString(), component: 'enrolment', ...event }) + '\n',
  );

/** Test hook (tests/control-plane/enrolment-kill9.test.ts): hold every request once its reservation is durable. */
const HOLD_AFTER_RESERVE = 'NIXFLEET_TEST_ENROL_HOLD_AFTER_RESERVE';

export const enrolServe: Command = {
  name: 'enrol serve',
  summary: 'run the enrolment endpoint (POST /enrol) behind nginx',
  help: `Usage: nixfleet enrol serve --tree DIR --root FILE --issuing DIR --state DIR
                         [--port N | --socket PATH] [--host ADDR] [--cert-days N]

The enrolment endpoint: verifies the installed tree (DIR/current) against the pinned root, then for each
POST /enrol (proxied by nginx, see \`nixfleet nginx-config --enrol-upstream\`) checks the host-signed
request, the one-time token (first enrolment) or the presented certificate (renewal), the CSR, the
durable record of used nonces and certified keys (--state DIR, fsynced before answering), and issues a
client certificate (CN = host, OU = agent, --cert-days, default 7) from the issuing CA (--issuing DIR,
\`nixfleet pki issuing-ca\`). Its key is the only signing key of the control plane side: keep this
process apart from everything else. Plain HTTP on loopback or a unix socket only. Prints
{"url":...,"port":...} once listening; logs JSON lines on stderr; stops on SIGINT/SIGTERM.`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      tree: { type: 'string' },
      root: { type: 'string' },
      issuing: { type: 'string' },
      state: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      socket: { type: 'string' },
      'cert-days': { type: 'string' },
    });
    for (const f of ['tree', 'root', 'issuing', 'state'] as const)
      if (!values[f]) throw new UsageError(`--${f} is required`);
    const hold = process.env[HOLD_AFTER_RESERVE] === '1';
    const server = await startEnrolmentEndpoint({
      treeDir: values.tree!,
      pinnedRoot: pinnedRootOption(values.root!),
      issuingDir: values.issuing!,
      stateDir: values.state!,
      certDays: parseInt('--cert-days', values['cert-days'], 7, 31),
      host: values.host,
      port: parseInt('--port', values.port, 8445, 65535),
      socketPath: values.socket,
      log: jsonLog,
      ...(hold ? { afterReserve: () => new Promise<void>(() => {}) } : {}),
    });
    process.stdout.write(JSON.stringify({ url: server.url, port: server.port }) + '\n');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await server.close();
    return EXIT_OK;
  },
};
