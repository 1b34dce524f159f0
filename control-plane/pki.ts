// Fleet PKI driven through the openssl CLI: a CA, the control plane's server certificate, one client
// certificate per host (CN = host name, OU=agent) and per operator (OU=operator), and revocation (a CRL
// plus a plain list of revoked serials). The CA key belongs offline; `pki init` creates it 0600.
//
// Layout of a PKI directory:
//   ca.key ca.crt ca.cnf db/{index.txt,serial,crlnumber,newcerts/}  crl.pem  revoked-serials.txt
//   server.key server.crt   hosts/<name>.{key,crt}   operators/<name>.{key,crt}
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Name } from '../protocol/schemas/common.ts';
import { writeFileAtomic } from '../protocol/atomic-write.ts';

export type KeyAlgorithm = 'ec' | 'ed25519';

export class PkiError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PkiError';
  }
}

export interface IssuedCert {
  name: string;
  certPath: string;
  keyPath: string;
  /** Uppercase hex, as nginx's $ssl_client_serial and `openssl x509 -serial` print it. */
  serial: string;
}

export interface PkiPaths {
  dir: string;
  caCert: string;
  caKey: string;
  crl: string;
  revokedSerials: string;
  serverCert: string;
  serverKey: string;
}

export function pkiPaths(dirArg: string): PkiPaths {
  const dir = resolve(dirArg);
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    crl: join(dir, 'crl.pem'),
    revokedSerials: join(dir, 'revoked-serials.txt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
  };
}

function openssl(args: string[], cwd: string, input?: string): string {
  try {
    // ca.cnf reads the server SAN from the environment; every `openssl ca` call parses it, so always set it.
    const env = { ...process.env, NIXFLEET_SAN: process.env.NIXFLEET_SAN ?? 'DNS:localhost' };
    return execFileSync('openssl', args, { cwd, input, env, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT') throw new PkiError('the openssl command is not installed (apt-get install openssl)');
    throw new PkiError(`openssl ${args[0]} failed: ${(err.stderr ?? err.message).trim().split('\n').slice(-3).join(' | ')}`);
  }
}

function caConfig(days: number): string {
  // copy_extensions = none: the CA decides every extension itself, nothing requested in a CSR is honoured.
  return `[ ca ]
default_ca = fleet_ca
[ fleet_ca ]
dir = .
database = ./db/index.txt
new_certs_dir = ./db/newcerts
serial = ./db/serial
crlnumber = ./db/crlnumber
certificate = ./ca.crt
private_key = ./ca.key
default_md = sha256
default_days = ${days}
default_crl_days = ${days}
policy = policy_fleet
copy_extensions = none
unique_subject = no
[ policy_fleet ]
organizationName = optional
organizationalUnitName = supplied
commonName = supplied
[ v3_server ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = \${ENV::NIXFLEET_SAN}
[ v3_client ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
`;
}

function genKey(path: string, algorithm: KeyAlgorithm, cwd: string): void {
  const args = algorithm === 'ed25519' ? ['genpkey', '-algorithm', 'ed25519', '-out', path] : ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path];
  openssl(args, cwd);
  chmodSync(join(cwd, path), 0o600);
}

function readAlgorithm(dir: string): KeyAlgorithm {
  const p = join(dir, 'algorithm');
  return existsSync(p) && readFileSync(p, 'utf8').trim() === 'ed25519' ? 'ed25519' : 'ec';
}

function requirePki(dir: string): void {
  if (!existsSync(join(dir, 'ca.key')) || !existsSync(join(dir, 'ca.cnf'))) {
    throw new PkiError(`${dir} is not a PKI directory (no ca.key / ca.cnf); create one with: nixfleet pki init --out ${dir}`);
  }
}

export interface InitOptions {
  algorithm?: KeyAlgorithm;
  fleet?: string;
  days?: number;
  /** Subject alternative names of the control plane's server certificate. */
  serverNames?: string[];
}

/**
 * Creates the CA, an empty CRL and the server certificate. Refuses to overwrite an existing CA. Built in a
 * staging directory beside `dir` and renamed into place, so a failure (no openssl, a full disk) leaves
 * nothing that the next run would have to refuse as "already holds a CA".
 */
export function initPki(dirArg: string, opts: InitOptions = {}): PkiPaths {
  const dir = resolve(dirArg);
  if (existsSync(join(dir, 'ca.key'))) throw new PkiError(`${dir} already holds a CA (ca.key); refusing to overwrite it`);
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new PkiError(`${dir} exists and is not empty; give a new or empty directory`);
  const staging = join(dirname(dir), `.${basename(dir)}.init-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  try {
    createCa(staging, opts);
    if (existsSync(dir)) rmdirSync(dir);
    renameSync(staging, dir);
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  }
  return pkiPaths(dir);
}

function createCa(dir: string, opts: InitOptions): void {
  const algorithm = opts.algorithm ?? 'ec';
  const days = opts.days ?? 825;
  const fleet = opts.fleet ?? 'nixfleet';
  mkdirSync(join(dir, 'db', 'newcerts'), { recursive: true });
  writeFileSync(join(dir, 'db', 'index.txt'), '');
  // Serials start at 1000 so they always print as an even number of hex digits, whatever tool prints them.
  writeFileSync(join(dir, 'db', 'serial'), '1000\n');
  writeFileSync(join(dir, 'db', 'crlnumber'), '1000\n');
  writeFileSync(join(dir, 'ca.cnf'), caConfig(days));
  writeFileSync(join(dir, 'algorithm'), algorithm + '\n');
  genKey('ca.key', algorithm, dir);
  openssl(
    ['req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', String(days), '-subj', `/O=${fleet}/CN=${fleet} fleet CA`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'ca.crt'],
    dir,
  );
  const names = opts.serverNames ?? ['localhost', '127.0.0.1'];
  issue(dir, 'server', 'server', `/O=${fleet}/OU=control-plane/CN=${names[0] ?? 'localhost'}`, 'v3_server', sanOf(names));
  writeCrl(dir);
}

function sanOf(names: string[]): string {
  return names.map((n) => (/^[0-9.]+$/.test(n) || n.includes(':') ? `IP:${n}` : `DNS:${n}`)).join(',');
}

function issue(dir: string, base: string, name: string, subject: string, ext: 'v3_server' | 'v3_client', san = 'DNS:unused'): IssuedCert {
  const algorithm = readAlgorithm(dir);
  const keyPath = `${base}.key`;
  const certPath = `${base}.crt`;
  genKey(keyPath, algorithm, dir);
  const csrPath = `${base}.csr`;
  openssl(['req', '-new', '-key', keyPath, '-subj', subject, '-out', csrPath], dir);
  const env = { ...process.env, NIXFLEET_SAN: san };
  try {
    execFileSync('openssl', ['ca', '-batch', '-config', 'ca.cnf', '-extensions', ext, '-in', csrPath, '-out', certPath, '-notext'], {
      cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    throw new PkiError(`openssl ca failed for ${name}: ${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()}`);
  } finally {
    rmSync(join(dir, csrPath), { force: true });
  }
  return { name, certPath: join(dir, certPath), keyPath: join(dir, keyPath), serial: certSerial(join(dir, certPath)) };
}

function checkName(name: string, what: string): void {
  if (!Name.safeParse(name).success) throw new PkiError(`${what} name ${JSON.stringify(name)} must be lowercase letters, digits and "-" (1-63 chars)`);
}

/** Host client certificate: CN = host name, OU = agent. */
export function issueHostCert(dirArg: string, host: string): IssuedCert {
  const dir = resolve(dirArg);
  requirePki(dir);
  checkName(host, 'host');
  mkdirSync(join(dir, 'hosts'), { recursive: true });
  if (existsSync(join(dir, 'hosts', `${host}.crt`))) throw new PkiError(`host ${host} already has a certificate (hosts/${host}.crt); revoke it first`);
  return issue(dir, `hosts/${host}`, host, `/O=${fleetOf(dir)}/OU=agent/CN=${host}`, 'v3_client');
}

/** Operator client certificate: OU = operator (the only certificates that may read the dashboard). */
export function issueOperatorCert(dirArg: string, name: string): IssuedCert {
  const dir = resolve(dirArg);
  requirePki(dir);
  checkName(name, 'operator');
  mkdirSync(join(dir, 'operators'), { recursive: true });
  if (existsSync(join(dir, 'operators', `${name}.crt`))) throw new PkiError(`operator ${name} already has a certificate; revoke it first`);
  return issue(dir, `operators/${name}`, name, `/O=${fleetOf(dir)}/OU=operator/CN=${name}`, 'v3_client');
}

function fleetOf(dir: string): string {
  const subject = openssl(['x509', '-in', 'ca.crt', '-noout', '-subject', '-nameopt', 'sep_multiline'], dir);
  return /O=([^\n]+)/.exec(subject)?.[1]?.trim() ?? 'nixfleet';
}

export function certSerial(certPath: string): string {
  const out = openssl(['x509', '-in', certPath, '-noout', '-serial'], '/');
  const m = /serial=([0-9A-F]+)/i.exec(out);
  if (!m?.[1]) throw new PkiError(`${certPath}: cannot read the certificate serial`);
  return m[1].toUpperCase();
}

/**
 * Revokes a certificate: marks it in the CA database, regenerates the CRL and the serial list, and moves
 * the certificate aside so the name can be issued again. Returns the revoked serial.
 */
export function revokeCert(dirArg: string, certFile: string): string {
  const dir = resolve(dirArg);
  requirePki(dir);
  const serial = certSerial(certFile);
  openssl(['ca', '-config', 'ca.cnf', '-revoke', resolve(certFile)], dir);
  writeCrl(dir);
  const abs = resolve(certFile);
  if (abs.startsWith(resolve(dir) + '/') && abs.endsWith('.crt')) {
    const base = abs.slice(0, -'.crt'.length);
    renameSync(abs, `${base}.revoked-${serial}.crt`);
    if (existsSync(`${base}.key`)) renameSync(`${base}.key`, `${base}.revoked-${serial}.key`);
  }
  return serial;
}

function writeCrl(dir: string): void {
  openssl(['ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem.tmp'], dir);
  const crl = readFileSync(join(dir, 'crl.pem.tmp'));
  writeFileAtomic(join(dir, 'crl.pem'), crl);
  rmSync(join(dir, 'crl.pem.tmp'));
  writeFileAtomic(join(dir, 'revoked-serials.txt'), revokedSerials(dir).map((s) => s + '\n').join(''));
}

/** Serials marked revoked ("R") in the CA database, uppercase hex. */
export function revokedSerials(dir: string): string[] {
  const db = readFileSync(join(resolve(dir), 'db', 'index.txt'), 'utf8');
  return db
    .split('\n')
    .map((line) => line.split('\t'))
    .filter((f) => f[0] === 'R' && f[3])
    .map((f) => (f[3] as string).toUpperCase());
}
