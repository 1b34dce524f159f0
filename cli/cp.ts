// `nixfleet cp serve` (embedded mTLS control plane + ack endpoint, or the ack endpoint alone behind
// nginx), `nixfleet cp sync` (verify-then-swap installation of a CI tree) and `nixfleet cp merge` (the
// union of several ack endpoint replicas' logs). The control plane holds no signing key: it only verifies.
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  EXIT_OK,
  EXIT_REFUSED,
  UsageError,
  output,
  parseCommandArgs,
  type Command,
} from './command.ts';
import { pinnedRootOption } from './root-option.ts';
import { isVerificationError, ACK_LOG_FILE, AckLogCorrupt } from '../protocol/index.ts';
import {
  startAckEndpoint,
  startControlPlane,
  type RunningServer,
  syncTree,
  mergeAckLogFiles,
  type MergeResult,
  loadReleaseView,
  loadVerifiedReleaseView,
  servedRoot,
} from '../control-plane/index.ts';

function readPem(flag: string, path: string | undefined): Buffer {
  if (!path) throw new UsageError(`--${flag} is required`);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UsageError(`cannot read --${flag} ${path}: ${(e as Error).message}`);
  }
}

function parsePort(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > 65535)
    throw new UsageError(`--port: expected 0-65535, got ${JSON.stringify(text)}`);
  return Number(text);
}

const jsonLog = (event: Record<string, unknown>) =>
  process.stderr.write(
    JSON.stringify({ time: new Date().toISOString(), component: 'control-plane', ...event }) + '\n',
  );

export const cpServe: Command = {
  name: 'cp serve',
  summary: 'serve the installed tree over mTLS and accept acks (embedded control plane)',
  help: `Usage:
  nixfleet cp serve --tree DIR --ca CA.crt --cert SERVER.crt --key SERVER.key [--port N] [--host ADDR]
                    [--acks-log DIR] [--crl CRL.pem] [--root PINNED_ROOT.json] [--no-group-commit]
  nixfleet cp serve --acks-only --tree DIR [--port N | --socket PATH] [--acks-log DIR]

The first form is the zero-setup control plane: one HTTPS server that requires a client certificate from
the fleet CA, serves the installed tree (DIR/current, installed by \`cp sync\`; or DIR itself when it has
no 'current') with per-host authorisation and conditional GETs, and accepts signed acks at POST /acks.
Every route answers 503 until a release is installed. With --root, a directory served as is must also
verify against the pinned root.

--acks-only runs just the ack endpoint behind nginx: plain HTTP on loopback or a unix socket, taking the
client identity from nginx's X-SSL-Client-* headers. With --ca/--cert/--key it terminates mTLS itself.

Acks go to an append-only log (default DIR/.ack-log/acks.log), fsynced before any 2xx, and are published
under DIR/acks/. Prints {"url":...,"port":...} on stdout once listening; logs JSON lines on stderr.
Stops on SIGINT/SIGTERM.

Options:
  --port N            listen port (default 8443; 0 = pick a free port)
  --host ADDR         listen address (default 127.0.0.1)
  --acks-log DIR      directory of the ack log
  --rate-limit B/S    per-host ack rate limit: burst/per-second (default 30/2; "off" disables)
  --no-group-commit   one fsync per ack (for comparison only)`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      tree: { type: 'string' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      crl: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      socket: { type: 'string' },
      'acks-log': { type: 'string' },
      root: { type: 'string' },
      'acks-only': { type: 'boolean', default: false },
      'no-group-commit': { type: 'boolean', default: false },
      'rate-limit': { type: 'string' },
    });
    if (!values.tree) throw new UsageError('--tree is required');
    let rateLimit: false | { burst: number; perSecond: number } | undefined;
    if (values['rate-limit'] === 'off') rateLimit = false;
    else if (values['rate-limit'] !== undefined) {
      const m = /^([0-9]{1,6})\/([0-9]{1,6})$/.exec(values['rate-limit']);
      if (!m || Number(m[1]) < 1 || Number(m[2]) < 1)
        throw new UsageError('--rate-limit: expected BURST/PER_SECOND (e.g. 30/2) or "off"');
      rateLimit = { burst: Number(m[1]), perSecond: Number(m[2]) };
    }
    const pinned = values.root ? pinnedRootOption(values.root) : undefined;
    const common = {
      treeDir: values.tree,
      ackLogDir: values['acks-log'],
      ack: { groupCommit: !values['no-group-commit'], rateLimit },
      pinnedRoot: pinned,
      log: jsonLog,
    };
    const tls =
      values.ca || values.cert || values.key
        ? {
            ca: readPem('ca', values.ca),
            cert: readPem('cert', values.cert),
            key: readPem('key', values.key),
            crl: values.crl ? readPem('crl', values.crl) : undefined,
          }
        : undefined;
    let server: RunningServer;
    if (values['acks-only']) {
      server = await startAckEndpoint({
        ...common,
        tls,
        host: values.host,
        port: parsePort(values.port, 8444),
        socketPath: values.socket,
      });
    } else {
      if (!tls)
        throw new UsageError(
          '--ca, --cert and --key are required (or use --acks-only behind nginx)',
        );
      server = await startControlPlane({
        ...common,
        tls,
        host: values.host,
        port: parsePort(values.port, 8443),
      });
    }
    process.stdout.write(
      JSON.stringify({ url: server.url, port: server.port, primed: server.primed() }) + '\n',
    );
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await server.close();
    return EXIT_OK;
  },
};

export const cpSync: Command = {
  name: 'cp sync',
  summary: 'verify a CI tree against the pinned root and install it atomically',
  help: `Usage: nixfleet cp sync --from DIR --tree DIR --root PINNED_ROOT.json [--nginx-pid FILE] [--keep N] [--json]

Copies the tree CI pushed (--from) into DIR/versions/, verifies the copy completely against the pinned
trust root (root chain, every signature and binding, freshness), refuses it if it is older than the
installed tree (release version, timestamp, revocations), then switches DIR/current to it atomically.
acks/ is kept. The signed revocations become nginx map files (DIR/nginx/revoked-serials.map and
revoked-hosts.map); with --nginx-pid, nginx is sent SIGHUP to reload them. On refusal nothing changes and
the current tree keeps serving. The control plane holds no signing key.

Exit codes: 0 installed (or already installed), 1 refused (the reason names the file), 2 usage/I/O.

Options:
  --keep N       old versions kept besides the current one (default 2)
  --json         print the result as JSON`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      from: { type: 'string' },
      tree: { type: 'string' },
      root: { type: 'string' },
      'nginx-pid': { type: 'string' },
      keep: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (!values.from || !values.tree || !values.root)
      throw new UsageError('--from, --tree and --root are required');
    if (values.keep !== undefined && !/^[0-9]{1,3}$/.test(values.keep))
      throw new UsageError('--keep: expected a small number');
    const pinned = pinnedRootOption(values.root);
    try {
      const r = await syncTree({
        from: values.from,
        treeDir: values.tree,
        pinnedRoot: pinned,
        nginxPidFile: values['nginx-pid'],
        keepVersions: values.keep === undefined ? undefined : Number(values.keep),
      });
      const { report: _report, ...summary } = r;
      output(values.json, summary, () =>
        r.installed
          ? `installed release ${r.releaseVersion} (timestamp ${r.timestampIssuedAt})` +
            (r.previousReleaseVersion !== null
              ? `, replacing release ${r.previousReleaseVersion}`
              : '') +
            `; ${r.revokedSerials} revoked serials, ${r.revokedHosts} revoked hosts` +
            (r.nginxReloaded ? '; nginx reloaded' : '')
          : `nothing to do: ${r.reason} (release ${r.releaseVersion})`,
      );
      return EXIT_OK;
    } catch (e) {
      if (isVerificationError(e)) {
        output(
          values.json,
          { installed: false, error: e.toJSON() },
          () => `refused: ${e.message}\nthe installed tree keeps serving`,
        );
        return EXIT_REFUSED;
      }
      throw e;
    }
  },
};

function mergeSummary(r: MergeResult, out: string): string {
  const lines = [`merged ${r.records.length} acks of ${r.hosts} hosts into ${out}`];
  for (const f of r.forks)
    lines.push(
      `  FORK ${f.host} seq ${f.seq}: ${f.digests.join(', ')} (head resolved to the smallest digest)`,
    );
  for (const x of r.rejected) lines.push(`  REJECTED ${x.host} ${x.digest}: ${x.reason}`);
  for (const c of r.chains) {
    const gaps = c.gaps.map((g) => (g.from === g.to ? `${g.from}` : `${g.from}-${g.to}`));
    if (gaps.length > 0 || c.broken.length > 0)
      lines.push(
        `  ${c.host}: seq 1..${c.head}${gaps.length ? `, missing seq ${gaps.join(', ')}` : ''}${c.broken.map((b) => `; broken link at seq ${b.seq}`).join('')}`,
      );
  }
  return lines.join('\n');
}

export const cpMerge: Command = {
  name: 'cp merge',
  summary:
    "merge several ack endpoint replicas' logs into one (grow-only union, acks verified, forks reported)",
  help: `Usage: nixfleet cp merge --tree DIR --out OUT_DIR LOG... [--root PINNED_ROOT.json] [--json]

Merges the ack logs (acks.log files, or directories holding one) of several ack endpoint replicas into
OUT_DIR/acks.log, written atomically. Acks are a grow-only set keyed by their digest: the merge is a
union, the same whatever the order of the inputs. Every ack is verified against the release installed in
DIR (fleet, host, host-key signature; with --root the tree is first verified against the pinned root):
those that fail are left out and reported. Each host's chain in the result is checked (continuity from
seq 1, forks). A fork (two acks a host signed with the same seq) is kept in the set, reported, and the
head resolves to the smaller digest on every replica. Stop the endpoint whose log directory is OUT_DIR
before merging into it; OUT_DIR/acks.log must be one of the inputs or not exist yet.

Exit codes: 0 merged, 1 merged with findings (forks, rejected acks) or refused (corrupt input), 2 usage/I/O.

Options:
  --json         print {out, records, hosts, forks, rejected, chains} as JSON`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        tree: { type: 'string' },
        out: { type: 'string' },
        root: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
      true,
    );
    if (!values.tree || !values.out) throw new UsageError('--tree and --out are required');
    if (positionals.length === 0)
      throw new UsageError('expected at least one ack log (acks.log or its directory)');
    const inputs = positionals.map((p) => {
      const file = existsSync(join(p, ACK_LOG_FILE)) ? join(p, ACK_LOG_FILE) : p;
      if (!existsSync(file)) throw new UsageError(`no ack log at ${p}`);
      return realpathSync(file);
    });
    const out = join(resolve(values.out), ACK_LOG_FILE);
    if (existsSync(out) && !inputs.includes(realpathSync(out)))
      throw new UsageError(
        `${out} exists and is not one of the inputs: merging would replace it; pass it as an input too`,
      );
    const root = servedRoot(values.tree);
    if (root === null) throw new UsageError(`no tree installed in ${values.tree}`);
    try {
      // With --root the host keys come from the verified release; without, from the installed tree as is.
      const view = values.root
        ? (await loadVerifiedReleaseView(root, pinnedRootOption(values.root), Date.now())).view
        : loadReleaseView(root);
      const r = mergeAckLogFiles(inputs, values.out, view);
      const { records: _records, ...summary } = r;
      output(values.json, { out, records: r.records.length, ...summary }, () =>
        mergeSummary(r, out),
      );
      return r.forks.length === 0 && r.rejected.length === 0 ? EXIT_OK : EXIT_REFUSED;
    } catch (e) {
      if (isVerificationError(e) || e instanceof AckLogCorrupt) {
        const error = isVerificationError(e)
          ? e.toJSON()
          : { code: 'AckLogCorrupt', file: e.file, detail: e.message };
        output(
          values.json,
          { merged: false, error },
          () => `refused: ${e.message}\nnothing was written`,
        );
        return EXIT_REFUSED;
      }
      throw e;
    }
  },
};
