// The registry of subcommands. Each command's code lives in the component it belongs to; modules load
// lazily so `nixfleet agent --once` does not pay for the publisher's imports.
// To add a command: one line here, and a module whose default export is a `Command`.
import type { Command } from './command.ts';

export interface CommandEntry {
  name: string;
  summary: string;
  load: () => Promise<{ default: Command }>;
}

export const COMMANDS: CommandEntry[] = [
  { name: 'version', summary: 'print the nixfleet version', load: () => import('./version.ts') },
  {
    name: 'validate',
    summary: 'validate a fleet JSON and print its resolved waves, or every violation',
    load: () => import('./validate.ts'),
  },
  {
    name: 'publish',
    summary: 'validate a fleet, resolve its waves and write a signed release into the tree',
    load: () => import('./publish.ts'),
  },
  {
    name: 'rollback',
    summary:
      'emergency rollback: publish a new release with the targets of release N (all at once or in waves)',
    load: () => import('./rollback.ts'),
  },
  {
    name: 'refresh',
    summary:
      're-sign the timestamp of the current release (scheduled CI job keeping the tree fresh)',
    load: () => import('./refresh.ts'),
  },
  {
    name: 'simulate',
    summary: 'simulate a rollout of a synthetic fleet through the real reconciler',
    load: () => import('./simulate.ts'),
  },
  {
    name: 'agent',
    summary: 'run the host agent (one cycle or a daemon); manage its quarantine',
    load: () => import('./agent.ts'),
  },
  {
    name: 'demo',
    summary: 'run a 12-host rollout end to end on this machine (under a minute)',
    load: () => import('./demo.ts'),
  },
  {
    name: 'keygen',
    summary: 'generate an Ed25519 signing key (root, release or host key)',
    load: () => import('./keygen.ts'),
  },
  {
    name: 'trust init',
    summary: 'create trust root v1 (root keys, release keys, cache keys, thresholds)',
    load: () => import('./trust.ts').then((m) => ({ default: m.trustInit })),
  },
  {
    name: 'trust rotate',
    summary: 'sign the next trust root version (rotate keys, set rejectBefore)',
    load: () => import('./trust.ts').then((m) => ({ default: m.trustRotate })),
  },
  {
    name: 'control pause',
    summary: 'pause a channel: its hosts start nothing new (signed operator control)',
    load: () => import('./control.ts').then((m) => ({ default: m.controlPause })),
  },
  {
    name: 'control resume',
    summary: 'resume a paused channel (signed operator control)',
    load: () => import('./control.ts').then((m) => ({ default: m.controlResume })),
  },
  {
    name: 'control resume-halted',
    summary: 'resume a halted rollout without a new release, accepting its failures so far',
    load: () => import('./control.ts').then((m) => ({ default: m.controlResumeHalted })),
  },
  {
    name: 'control retry',
    summary: 'let a failed host try its target again in the same rollout',
    load: () => import('./control.ts').then((m) => ({ default: m.controlRetry })),
  },
  {
    name: 'control clear-quarantine',
    summary: 'clear quarantines fleet-wide or for one host (signed operator control)',
    load: () => import('./control.ts').then((m) => ({ default: m.controlClearQuarantine })),
  },
  {
    name: 'control show',
    summary: 'show the operator controls in force and any not yet bound by the timestamp',
    load: () => import('./control.ts').then((m) => ({ default: m.controlShow })),
  },
  {
    name: 'verify',
    summary: 'verify a whole published tree offline against a pinned trust root',
    load: () => import('./verify.ts'),
  },
  {
    name: 'evidence export',
    summary: 'write a self-contained, offline-verifiable evidence bundle for an auditor',
    load: () => import('./evidence.ts').then((m) => ({ default: m.evidenceExport })),
  },
  {
    name: 'evidence verify',
    summary: "verify an evidence bundle offline and print each host's controls",
    load: () => import('./evidence.ts').then((m) => ({ default: m.evidenceVerify })),
  },
  {
    name: 'site build',
    summary: 'build the operator dashboard (static HTML) from the verified tree and the acks',
    load: () => import('./site.ts').then((m) => ({ default: m.siteBuild })),
  },
  {
    name: 'site watch',
    summary: 'rebuild the operator dashboard whenever the timestamp, the tree or the acks change',
    load: () => import('./site.ts').then((m) => ({ default: m.siteWatch })),
  },
  {
    name: 'status',
    summary:
      'show the rollout from a verified tree + verified acks: channels, waves, hosts and why they wait',
    load: () => import('./status.ts'),
  },
  {
    name: 'trace',
    summary:
      "replay a host's or channel's rollout from the ack history: eligibility, gate holds, activation, soak",
    load: () => import('./trace.ts'),
  },
  {
    name: 'views serve',
    summary:
      'keep the operator views of a tree warm in memory: `status` and `trace` of it answer from there',
    load: () => import('./view-server.ts'),
  },
  {
    name: 'cp serve',
    summary: 'serve the installed tree over mTLS and accept acks (embedded control plane)',
    load: () => import('./cp.ts').then((m) => ({ default: m.cpServe })),
  },
  {
    name: 'cp sync',
    summary: 'verify a CI tree against the pinned root and install it atomically',
    load: () => import('./cp.ts').then((m) => ({ default: m.cpSync })),
  },
  {
    name: 'cp merge',
    summary:
      "merge several ack endpoint replicas' logs into one (grow-only union, acks verified, forks reported)",
    load: () => import('./cp.ts').then((m) => ({ default: m.cpMerge })),
  },
  {
    name: 'cp archive-acks',
    summary:
      "move an ack log's old sealed segments to an archive directory (history stays verifiable)",
    load: () => import('./cp-archive.ts'),
  },
  {
    name: 'nginx-config',
    summary:
      'render the production nginx config (mTLS, per-host authorisation, revocation, ack proxy)',
    load: () => import('./nginx-config.ts'),
  },
  {
    name: 'pki init',
    summary: 'create the fleet CA, an empty CRL and the control plane server certificate',
    load: () => import('./pki.ts').then((m) => ({ default: m.pkiInit })),
  },
  {
    name: 'pki issue-host',
    summary: 'issue a host client certificate (CN = host name, OU=agent)',
    load: () => import('./pki.ts').then((m) => ({ default: m.pkiIssueHost })),
  },
  {
    name: 'pki issue-operator',
    summary: 'issue an operator client certificate (OU=operator)',
    load: () => import('./pki.ts').then((m) => ({ default: m.pkiIssueOperator })),
  },
  {
    name: 'pki revoke',
    summary: 'revoke a client certificate (CRL + revoked serial list)',
    load: () => import('./pki.ts').then((m) => ({ default: m.pkiRevoke })),
  },
  {
    name: 'pki renew',
    summary: 'renew a certificate (same name; same key unless --new-key)',
    load: () => import('./pki.ts').then((m) => ({ default: m.pkiRenew })),
  },
  {
    name: 'enrol token',
    summary: 'mint a one-time enrolment token for a host (enrolment key of the trust root)',
    load: () => import('./enrol.ts').then((m) => ({ default: m.enrolToken })),
  },
  {
    name: 'enrol withdraw',
    summary: 'withdraw enrolment tokens (by token file, nonce or host) before they are used',
    load: () => import('./enrol.ts').then((m) => ({ default: m.enrolWithdraw })),
  },
  {
    name: 'enrol serve',
    summary: 'run the enrolment endpoint (POST /enrol) behind nginx',
    load: () => import('./enrol.ts').then((m) => ({ default: m.enrolServe })),
  },
  {
    name: 'pki issuing-ca',
    summary:
      'create the enrolment issuing CA (client certificates of this fleet only), signed by the fleet CA',
    load: () => import('./pki.ts').then((m) => ({ default: m.pkiIssuingCa })),
  },
  {
    name: 'pki list',
    summary: 'list the certificates of a PKI directory with their expiry',
    load: () => import('./pki.ts').then((m) => ({ default: m.pkiList })),
  },
];
