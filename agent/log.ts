// Structured JSON-lines logs: one object per line with time, level, host and event, so journald,
// the demo and the tests can all read the same stream.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  log(level: LogLevel, event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export type LogSink = (line: string) => void;

export function createLogger(
  host: string,
  sink: LogSink = (l) => process.stdout.write(l),
  clock: () => number = Date.now,
): Logger {
  const log = (level: LogLevel, event: string, fields: Record<string, unknown> = {}) => {
    sink(
      JSON.stringify({ time: new Date(clock()).toISOString(), level, host, event, ...fields }) +
        '\n',
    );
  };
  return {
    log,
    info: (e, f) => log('info', e, f),
    warn: (e, f) => log('warn', e, f),
    error: (e, f) => log('error', e, f),
  };
}

/** Collects records in memory (tests, the demo's in-process view). */
export function memoryLogger(host: string): Logger & { records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const logger = createLogger(host, (line) =>
    records.push(JSON.parse(line) as Record<string, unknown>),
  );
  return Object.assign(logger, { records });
}
