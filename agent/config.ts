// The agent's configuration file (JSON, strict: unknown fields are refused, errors name the field).
// Relative paths are resolved against the config file's directory.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { HostName, Malformed, parseStrictJson, parseWith } from '../protocol/index.ts';
import { ActivatorConfig } from './activators/index.ts';

const FilePath = z.string().min(1).max(4096);
const HttpsUrl = z
  .string()
  .max(2048)
  .regex(/^https:\/\//, 'must be an https:// URL');

export const AgentConfig = z.strictObject({
  /** Base URL of the published tree, e.g. https://cp.example:8443/ */
  controlPlaneUrl: HttpsUrl,
  /**
   * Further control plane boxes serving the same tree (each with its own ack endpoint), tried in this
   * order after controlPlaneUrl; the agent sticks to the one that answered last (agent/http-client.ts).
   */
  otherControlPlaneUrls: z
    .array(HttpsUrl)
    .max(7)
    .default([])
    .refine((urls) => new Set(urls).size === urls.length, 'lists a URL twice'),
  /** Tree-relative path the ack endpoint listens on (POST). */
  ackPath: z
    .string()
    .max(256)
    .regex(/^[a-z0-9][a-z0-9/_-]*$/, 'must be a relative path like "acks"')
    .default('acks'),
  caFile: FilePath,
  certFile: FilePath,
  keyFile: FilePath,
  host: HostName,
  /**
   * A one-time enrolment token (`nixfleet enrol token`): with no certFile yet, the agent enrols with it
   * (agent/enrolment.ts) and from then on renews its certificate itself; null = certificates are
   * installed by hand (`nixfleet pki issue-host`).
   */
  enrolmentTokenFile: FilePath.nullable().default(null),
  /** nixfleet private key file (protocol/keys.ts) whose public half is the host key in the fleet. */
  hostKeyFile: FilePath,
  /** The pinned trust root (a signed root/<n>.json) the agent was installed with. */
  trustRootFile: FilePath,
  stateDir: FilePath,
  activator: ActivatorConfig,
  quarantineHours: z
    .number()
    .int()
    .min(0)
    .max(24 * 365)
    .default(24),
  /** Daemon mode schedule (cron, 5 or 6 fields; 6 = with seconds). */
  schedule: z.string().min(9).max(128).default('*/1 * * * *'),
  clockSkewSeconds: z.number().int().min(0).max(86_400).default(60),
  requestTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
  retries: z.number().int().min(0).max(10).default(3),
  /** Pause between probe rounds and between read-back polls in the confirm window. */
  probeIntervalMs: z.number().int().min(10).max(600_000).default(2_000),
  /** Random delay before a timer/daemon run so a fleet does not poll in lockstep (0 = none). */
  splayMs: z.number().int().min(0).max(3_600_000).default(0),
  /**
   * Prometheus metrics written at the end of every run (agent/metrics.ts), e.g. into node_exporter's
   * textfile directory as `nixfleet-agent.prom`; null = none.
   */
  metricsFile: FilePath.regex(
    /\.prom$/,
    'must end in .prom (node_exporter reads only *.prom files)',
  )
    .nullable()
    .default(null),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

const PATH_FIELDS = [
  'caFile',
  'certFile',
  'keyFile',
  'hostKeyFile',
  'trustRootFile',
  'stateDir',
] as const;

/** Every control plane box of a config, in order of preference. */
export function controlPlaneUrlsOf(config: AgentConfig): string[] {
  return [config.controlPlaneUrl, ...config.otherControlPlaneUrls];
}

export function parseAgentConfig(json: unknown, file: string): AgentConfig {
  const config = parseWith(AgentConfig, json, file);
  if (config.otherControlPlaneUrls.includes(config.controlPlaneUrl))
    throw new Malformed(file, '$.otherControlPlaneUrls: lists controlPlaneUrl again');
  const base = dirname(resolve(file));
  for (const f of PATH_FIELDS) if (!isAbsolute(config[f])) config[f] = resolve(base, config[f]);
  if (config.enrolmentTokenFile !== null && !isAbsolute(config.enrolmentTokenFile))
    config.enrolmentTokenFile = resolve(base, config.enrolmentTokenFile);
  if (config.metricsFile !== null && !isAbsolute(config.metricsFile))
    config.metricsFile = resolve(base, config.metricsFile);
  return config;
}

/**
 * The agent's own configuration is wrong or unreadable: a usage error (exit 2), not a refusal of the
 * served tree (exit 1), even though the strict JSON reader reports it with the same typed errors.
 */
export class AgentConfigInvalid extends Error {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`agent config ${file}: ${detail}`);
    this.name = 'AgentConfigInvalid';
  }
}

export function loadAgentConfig(file: string): AgentConfig {
  try {
    return parseAgentConfig(
      parseStrictJson(readFileSync(file), { file, maxBytes: 256 * 1024 }),
      file,
    );
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new AgentConfigInvalid(file, err.syscall ? `cannot read it (${err.code})` : err.message);
  }
}
