// Layout of a control plane's tree directory (the `--tree DIR` of `cp serve`, `cp sync`, `nginx-config`):
//   current -> versions/<name>   the installed, verified tree (swapped atomically by `cp sync`)
//   versions/<name>/             immutable copies of verified trees
//   acks/                        written by the ack endpoint only; kept across syncs; served as /acks/
//   .ack-log/acks.log            the ack endpoint's default log
//   nginx/revoked-serials.map    nginx `map` bodies derived from the signed revocations
//   nginx/revoked-hosts.map
// A directory without `current` is served as it is (the zero-setup default: point `cp serve` at a tree
// that `nixfleet publish` wrote); acks/ then sits inside it.
// The parts other readers need (servedRoot, acks/, the default ack log) live in protocol/control-plane-dir.ts.
export {
  ACKS_DIR,
  ACK_LOG_DIR,
  CURRENT_LINK,
  ackLogDir,
  ackLogPath,
  acksRoot,
  hasInstalledTree,
  servedRoot,
} from '../protocol/index.ts';

export const VERSIONS_DIR = 'versions';
export const NGINX_DIR = 'nginx';
export const REVOKED_SERIALS_MAP = 'nginx/revoked-serials.map';
export const REVOKED_HOSTS_MAP = 'nginx/revoked-hosts.map';
