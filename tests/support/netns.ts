// End-to-end test helper: a private network for one test fleet, made of Linux network namespaces.
//   control plane namespace: a bridge holding CP_ADDR (nginx listens there; the ack endpoint on its own
//                            loopback, reached only by nginx)
//   one namespace per host:  a veth pair whose other end is on the bridge, HOST_ADDR(i) on it
// These addresses exist only inside namespaces this helper created, and every packet to them is sent
// from inside one of them (`ip netns exec`), never from the root namespace. Names carry the test
// process's pid and a counter, so fleets of parallel test runs never meet. destroy() deletes the
// namespaces (which deletes their veth ends); a test that dies first is cleaned up at process exit, and
// a run killed outright (SIGKILL, a machine restart) leaves namespaces that the next create() sweeps:
// those whose pid no longer runs.
// Needs root, iproute2 and nftables: call requireNetns() first.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hasTool, requireTool } from './skip.ts';

const SUBNET = '10.231.40';
export const CP_ADDR = `${SUBNET}.1`;
/** Hosts get .2, .3, ... in the order they are listed (at most 250). */
const hostAddr = (i: number) => `${SUBNET}.${i + 2}`;

const live = new Set<string>();
process.on('exit', () => {
  for (const ns of live)
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
});

let counter = 0;

/** `nf-<pid base 36>_<run tag>-<role>`: the pid is what tells a dead run's namespace. */
const OUR_NAME = /^nf-([0-9a-z]+)_[0-9a-z]+-[0-9a-z-]+$/;

/** A fresh run tag of this process: namespaces named with it are swept once the process is gone. */
export function runTag(): string {
  return `${process.pid.toString(36)}_${(counter++).toString(36)}`;
}

/** Whether a process runs (signal 0 checks without sending anything; EPERM means it runs as another user). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Deletes the namespaces this helper made in runs whose process is gone. Only names of our own form are
 * touched, and only when their pid does not run, so a parallel live run's fleet is never swept.
 */
export function sweepDeadRuns(): string[] {
  const swept: string[] = [];
  const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0]!);
  for (const ns of names) {
    const m = OUR_NAME.exec(ns);
    if (!m || running(parseInt(m[1]!, 36))) continue;
    try {
      ip('netns', 'del', ns);
      swept.push(ns);
    } catch {
      /* deleted meanwhile by another sweeper */
    }
  }
  return swept;
}
let swept = false;
/** Sweeps at most once per process: before the first namespace this run makes. */
export function sweepDeadRunsOnce(): void {
  if (swept) return;
  swept = true;
  sweepDeadRuns();
}

/**
 * True when this machine can build the namespaces (root, ip, nft). Outside CI a missing piece skips the
 * test loudly; in CI (CI=true) it throws, like requireTool.
 */
export function requireNetns(why: string): boolean {
  if (!requireTool('ip', why) || !requireTool('nft', why)) return false;
  if (process.getuid?.() === 0) return true;
  if (process.env.CI === 'true')
    throw new Error(`${why}: network namespaces need root, and CI runs as root`);
  console.warn(`\n  !!! SKIPPED (${why}): network namespaces need root\n`);
  return false;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

export class NetnsTopology {
  readonly cpNs: string;
  readonly cpAddr = CP_ADDR;
  private readonly hostNs = new Map<string, { ns: string; addr: string }>();
  private readonly tag: string;

  private constructor(readonly hosts: string[]) {
    this.tag = runTag();
    this.cpNs = `nf-${this.tag}-cp`;
    hosts.forEach((h, i) => this.hostNs.set(h, { ns: `nf-${this.tag}-h${i}`, addr: hostAddr(i) }));
  }

  /** Builds the control plane namespace and one namespace per host, all joined by the bridge. */
  static create(hosts: string[]): NetnsTopology {
    if (hosts.length > 250) throw new Error('NetnsTopology: at most 250 hosts');
    sweepDeadRunsOnce();
    const t = new NetnsTopology(hosts);
    try {
      t.build();
    } catch (e) {
      t.destroy();
      throw e;
    }
    return t;
  }

  private build(): void {
    const cp = this.cpNs;
    ip('netns', 'add', cp);
    live.add(cp);
    ip('-n', cp, 'link', 'set', 'lo', 'up');
    ip('-n', cp, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', cp, 'addr', 'add', `${CP_ADDR}/24`, 'dev', 'br0');
    ip('-n', cp, 'link', 'set', 'br0', 'up');
    this.hosts.forEach((h, i) => {
      const { ns, addr } = this.hostNs.get(h)!;
      ip('netns', 'add', ns);
      live.add(ns);
      // veth names are global until moved: the tag keeps them unique (<= 15 characters).
      const a = `nfa${this.tag}${i}`.slice(0, 15);
      const b = `nfb${this.tag}${i}`.slice(0, 15);
      ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b);
      ip('link', 'set', a, 'netns', cp);
      ip('link', 'set', b, 'netns', ns);
      ip('-n', cp, 'link', 'set', a, 'master', 'br0');
      ip('-n', cp, 'link', 'set', a, 'up');
      ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', b);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'link', 'set', b, 'up');
    });
  }

  /** The namespace a host's processes run in. */
  nsOf(host: string): string {
    const e = this.hostNs.get(host);
    if (!e) throw new Error(`NetnsTopology: no namespace for host ${host}`);
    return e.ns;
  }

  addrOf(host: string): string {
    this.nsOf(host);
    return this.hostNs.get(host)!.addr;
  }

  /** Runs a command inside a namespace (argv, never a shell); returns stdout. */
  exec(ns: string, argv: string[], input?: string): string {
    return execFileSync('ip', ['netns', 'exec', ns, ...argv], {
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(input !== undefined ? { input } : {}),
    });
  }

  /**
   * Black-holes the host: an nftables rule in its namespace drops every packet to the control plane
   * (a partition the host cannot tell from a dead network). heal() removes it.
   */
  partition(host: string): void {
    const ns = this.nsOf(host);
    const nft = (...a: string[]) => this.exec(ns, ['nft', ...a]);
    nft('add', 'table', 'inet', 'nfpart');
    nft('add', 'chain', 'inet', 'nfpart', 'out', '{ type filter hook output priority 0; }');
    nft('add', 'rule', 'inet', 'nfpart', 'out', 'ip', 'daddr', CP_ADDR, 'drop');
  }

  heal(host: string): void {
    this.exec(this.nsOf(host), ['nft', 'delete', 'table', 'inet', 'nfpart']);
  }

  destroy(): void {
    for (const ns of [...this.hostNs.values()].map((e) => e.ns).concat(this.cpNs)) {
      if (!live.has(ns)) continue;
      try {
        ip('netns', 'del', ns);
      } catch {
        /* not created */
      }
      live.delete(ns);
    }
  }
}

/**
 * Whether a process (by PID) has a TCP socket listening on `port`, read from /proc/PID/net/tcp: that file
 * shows the sockets of the process's own network namespace, so readiness is checked without sending
 * anything.
 */
export function listeningIn(pid: number, port: number): boolean {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/net/tcp`, 'utf8');
  } catch {
    return false;
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return text
    .split('\n')
    .slice(1)
    .some((line) => {
      const f = line.trim().split(/\s+/);
      return f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A';
    });
}

/** curl is how tests send their own requests from inside a host's namespace. */
export function hasCurl(): boolean {
  return hasTool('curl');
}
