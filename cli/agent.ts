// `nixfleet agent`: the host agent (one cycle with --once, or a daemon on a cron schedule) and
// `nixfleet agent quarantine list | clear [TARGET]`.
import type { CronJob } from 'cron';
import {
  loadAgentConfig,
  type AgentConfig,
  closeAgentConnections,
  runAgentOnce,
  type RunOutcome,
  createLogger,
  Quarantine,
  StateDir,
} from '../agent/index.ts';
import {
  EXIT_OK,
  EXIT_REFUSED,
  EXIT_USAGE,
  UsageError,
  output,
  parseCommandArgs,
  type Command,
} from './command.ts';

const HELP = `
Usage:
  nixfleet agent --config FILE --once       run one cycle (what the systemd timer does)
  nixfleet agent --config FILE              daemon: run a cycle on the config's cron "schedule"
  nixfleet agent quarantine list  --config FILE [--json]
  nixfleet agent quarantine clear --config FILE [TARGET]   (no TARGET: clear every entry)

One cycle: roll back an unconfirmed activation past its deadline; fetch the signed tree over mTLS
(conditional GETs) and verify it from the pinned trust root; fetch the peers' acks the rollout depends
on; run the reconciler; act (activate with a confirm window and magic rollback, heartbeat, defer, refuse);
post the host-signed acks. Logs are JSON lines on stdout, one per event; every decision carries its reason.

Config (JSON, unknown fields refused; relative paths are relative to the config file):
  controlPlaneUrl  https://... base URL of the tree     ackPath        POST path of the ack endpoint ("acks")
  otherControlPlaneUrls  further boxes serving the same tree, tried in order after controlPlaneUrl
                   ([]; the agent sticks to the box that answered last and fails over on errors)
  caFile certFile keyFile   fleet CA, this host's client certificate and key
  host             this host's name                       hostKeyFile    nixfleet private key (signs acks)
  trustRootFile    the pinned root/<n>.json               stateDir       state directory (locked per run)
  activator        {"kind":"command","switch":[..],"rollback":[..],"current":[..],"inhibitors":[..]|null}
                   or {"kind":"simulated","initialPath":"/nix/store/...","unhealthy":[..],"failSwitch":[..]}
  quarantineHours (24)  schedule ("*/1 * * * *")  clockSkewSeconds (60)  requestTimeoutMs (10000)
  retries (3)  probeIntervalMs (2000)  splayMs (0)

Exit codes (--once): 0 cycle done (including "waiting", "stale release" and "another run holds the
lock"), 1 the served tree was refused (verification failed; the current generation is kept),
2 usage error, bad config, or control plane unreachable, 4 a local state file is damaged or cannot be
written (the message names the file and what to do). Recovery runs before anything else reads local
state: an unconfirmed activation past its deadline is rolled back even when exit 4 follows.
`;

/** A file in the agent's state directory is damaged or cannot be written (disk full). */
export const EXIT_LOCAL_STATE = 4;

function exitCodeFor(o: RunOutcome): number {
  if (o.kind === 'refused') return EXIT_REFUSED;
  if (o.kind === 'unreachable') return EXIT_USAGE;
  if (o.kind === 'local-state') return EXIT_LOCAL_STATE;
  return EXIT_OK;
}

async function runDaemon(config: AgentConfig): Promise<number> {
  const log = createLogger(config.host);
  let running = false;
  const tick = async () => {
    if (running) {
      log.info('tick-skipped', { reason: 'the previous cycle is still running' });
      return;
    }
    running = true;
    try {
      if (config.splayMs > 0)
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * config.splayMs)));
      await runAgentOnce(config, { log, reuseConnections: true });
    } catch (e) {
      log.error('cycle-failed', { reason: (e as Error).message });
    } finally {
      running = false;
    }
  };
  // Daemon mode only: a `--once` run does not load the cron library.
  const { CronJob: Job } = await import('cron');
  let job: CronJob;
  try {
    job = Job.from({ cronTime: config.schedule, onTick: tick, start: false, timeZone: 'UTC' });
  } catch (e) {
    throw new UsageError(
      `schedule ${JSON.stringify(config.schedule)} is not a valid cron expression: ${(e as Error).message}`,
    );
  }
  log.info('daemon-started', { schedule: config.schedule, pid: process.pid });
  job.start();
  await tick();
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info('daemon-stopping', { signal });
      void job.stop();
      const wait = setInterval(() => {
        if (!running) {
          clearInterval(wait);
          resolve();
        }
      }, 50);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  closeAgentConnections();
  return EXIT_OK;
}

async function quarantine(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action !== 'list' && action !== 'clear')
    throw new UsageError('expected "quarantine list" or "quarantine clear [TARGET]"');
  const { values, positionals } = parseCommandArgs(
    rest,
    { config: { type: 'string' }, json: { type: 'boolean', default: false } },
    true,
  );
  if (!values.config) throw new UsageError('--config FILE is required');
  if (positionals.length > (action === 'clear' ? 1 : 0))
    throw new UsageError(`unexpected argument ${positionals.at(-1)}`);
  const config = loadAgentConfig(values.config);
  const q = new Quarantine(new StateDir(config.stateDir));
  const now = Date.now();
  if (action === 'list') {
    const entries = q.active(now);
    output(values.json, { entries }, () =>
      entries.length
        ? entries
            .map((e) => `${e.target}\n  until ${e.until} (since ${e.since}): ${e.reason}`)
            .join('\n')
        : 'no quarantined closures',
    );
    return EXIT_OK;
  }
  const target = positionals[0];
  const removed = q.clear(target, now);
  output(values.json, { cleared: removed }, () =>
    removed.length
      ? `cleared ${removed.length} entr${removed.length === 1 ? 'y' : 'ies'}:\n${removed.map((e) => `  ${e.target}`).join('\n')}`
      : target
        ? `${target} is not quarantined`
        : 'nothing to clear',
  );
  return target && removed.length === 0 ? EXIT_REFUSED : EXIT_OK;
}

const command: Command = {
  name: 'agent',
  summary: 'run the host agent (one cycle or a daemon); manage its quarantine',
  help: HELP,
  async run(argv) {
    if (argv[0] === 'quarantine') return quarantine(argv.slice(1));
    const { values } = parseCommandArgs(argv, {
      config: { type: 'string' },
      once: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    });
    if (!values.config) throw new UsageError('--config FILE is required');
    const config = loadAgentConfig(values.config);
    if (!values.once) return runDaemon(config);
    const outcome = await runAgentOnce(config);
    if (values.json) process.stdout.write(JSON.stringify({ outcome }) + '\n');
    if (outcome.kind === 'local-state') process.stderr.write(`nixfleet agent: ${outcome.reason}\n`);
    return exitCodeFor(outcome);
  },
};
export default command;
