// Fleet PKI driven through the openssl CLI: a CA, the control plane's server certificate, one client
// certificate per host (CN = host name, OU=agent) and per operator (OU=operator), and revocation (a CRL
// plus a plain list of revoked serials). The CA key belongs offline; `pki init` creates it 0600.
//
// Layout of a PKI directory:
//   ca.key ca.crt ca.cnf db/{index.txt,serial,crlnumber,newcerts/}  crl.pem  revoked-serials.txt
//   server.key server.crt   hosts/<name>.{key,crt}   operators/<name>.{key,crt}
//   (set aside: <name>.revoked-<serial>.{crt,key} by revoke, <name>.renewed-<serial>.crt by renew)
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Name, sha256Digest, writeFileAtomic } from '../protocol/index.ts';

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
    return execFileSync('openssl', args, {
      cwd,
      input,
      env,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT')
      throw new PkiError('the openssl command is not installed (apt-get install openssl)');
    throw new PkiError(
      `openssl ${args[0]} failed: ${(err.stderr ?? err.message).trim().split('\n').slice(-3).join(' | ')}`,
    );
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
  const args =
    algorithm === 'ed25519'
      ? ['genpkey', '-algorithm', 'ed25519', '-out', path]
      : ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path];
  openssl(args, cwd);
  chmodSync(join(cwd, path), 0o600);
}

function readAlgorithm(dir: string): KeyAlgorithm {
  const p = join(dir, 'algorithm');
  return existsSync(p) && readFileSync(p, 'utf8').trim() === 'ed25519' ? 'ed25519' : 'ec';
}

function requirePki(dir: string): void {
  if (!existsSync(join(dir, 'ca.key')) || !existsSync(join(dir, 'ca.cnf'))) {
    throw new PkiError(
      `${dir} is not a PKI directory (no ca.key / ca.cnf); create one with: nixfleet pki init --out ${dir}`,
    );
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
  if (existsSync(join(dir, 'ca.key')))
    throw new PkiError(`${dir} already holds a CA (ca.key); refusing to overwrite it`);
  if (existsSync(dir) && readdirSync(dir).length > 0)
    throw new PkiError(`${dir} exists and is not empty; give a new or empty directory`);
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
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-sha256',
      '-days',
      String(days),
      '-subj',
      `/O=${fleet}/CN=${fleet} fleet CA`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-out',
      'ca.crt',
    ],
    dir,
  );
  const names = opts.serverNames ?? ['localhost', '127.0.0.1'];
  issue(
    dir,
    'server',
    'server',
    `/O=${fleet}/OU=control-plane/CN=${names[0] ?? 'localhost'}`,
    'v3_server',
    sanOf(names),
  );
  writeCrl(dir);
}

function sanOf(names: string[]): string {
  return names
    .map((n) => (/^[0-9.]+$/.test(n) || n.includes(':') ? `IP:${n}` : `DNS:${n}`))
    .join(',');
}

export interface IssueOptions {
  /** Validity in days (default: the CA's default_days). */
  days?: number;
}

interface IssueSpec extends IssueOptions {
  /** Sign a CSR for the key already at `<base>.key` instead of generating one (renewal). */
  keepKey?: boolean;
  /** Where the certificate is written (default `<base>.crt`). */
  certOut?: string;
}

function issue(
  dir: string,
  base: string,
  name: string,
  subject: string,
  ext: 'v3_server' | 'v3_client',
  san = 'DNS:unused',
  spec: IssueSpec = {},
): IssuedCert {
  const algorithm = readAlgorithm(dir);
  const keyPath = `${base}.key`;
  const certPath = spec.certOut ?? `${base}.crt`;
  if (!spec.keepKey) genKey(keyPath, algorithm, dir);
  const csrPath = `${base}.csr`;
  openssl(['req', '-new', '-key', keyPath, '-subj', subject, '-out', csrPath], dir);
  const env = { ...process.env, NIXFLEET_SAN: san };
  const days = spec.days === undefined ? [] : ['-days', String(spec.days)];
  try {
    execFileSync(
      'openssl',
      [
        'ca',
        '-batch',
        '-config',
        'ca.cnf',
        '-extensions',
        ext,
        ...days,
        '-in',
        csrPath,
        '-out',
        certPath,
        '-notext',
      ],
      {
        cwd: dir,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
  } catch (e) {
    throw new PkiError(
      `openssl ca failed for ${name}: ${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()}`,
    );
  } finally {
    rmSync(join(dir, csrPath), { force: true });
  }
  return {
    name,
    certPath: join(dir, certPath),
    keyPath: join(dir, keyPath),
    serial: certSerial(join(dir, certPath)),
  };
}

function checkName(name: string, what: string): void {
  if (!Name.safeParse(name).success)
    throw new PkiError(
      `${what} name ${JSON.stringify(name)} must be lowercase letters, digits and "-" (1-63 chars)`,
    );
}

/** Host client certificate: CN = host name, OU = agent. */
export function issueHostCert(dirArg: string, host: string, opts: IssueOptions = {}): IssuedCert {
  const dir = resolve(dirArg);
  requirePki(dir);
  checkName(host, 'host');
  mkdirSync(join(dir, 'hosts'), { recursive: true });
  if (existsSync(join(dir, 'hosts', `${host}.crt`)))
    throw new PkiError(
      `host ${host} already has a certificate (hosts/${host}.crt); revoke it first`,
    );
  return issue(
    dir,
    `hosts/${host}`,
    host,
    `/O=${fleetOf(dir)}/OU=agent/CN=${host}`,
    'v3_client',
    undefined,
    opts,
  );
}

/** Operator client certificate: OU = operator (the only certificates that may read the dashboard). */
export function issueOperatorCert(
  dirArg: string,
  name: string,
  opts: IssueOptions = {},
): IssuedCert {
  const dir = resolve(dirArg);
  requirePki(dir);
  checkName(name, 'operator');
  mkdirSync(join(dir, 'operators'), { recursive: true });
  if (existsSync(join(dir, 'operators', `${name}.crt`)))
    throw new PkiError(`operator ${name} already has a certificate; revoke it first`);
  return issue(
    dir,
    `operators/${name}`,
    name,
    `/O=${fleetOf(dir)}/OU=operator/CN=${name}`,
    'v3_client',
    undefined,
    opts,
  );
}

function fleetOf(dir: string): string {
  const subject = openssl(
    ['x509', '-in', 'ca.crt', '-noout', '-subject', '-nameopt', 'sep_multiline'],
    dir,
  );
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
  writeFileAtomic(
    join(dir, 'revoked-serials.txt'),
    revokedSerials(dir)
      .map((s) => s + '\n')
      .join(''),
  );
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

/**
 * A PKCS#12 bundle of a client certificate, its key and the fleet CA, for importing an operator
 * certificate into a browser. Encrypted with the password read from `passwordFile` (first line; none:
 * an empty password, which browsers accept). openssl 3's defaults (AES-256, PBKDF2). Written 0600 via
 * a temp file in the target directory and a rename.
 */
export function exportPkcs12(
  dirArg: string,
  cert: IssuedCert,
  outFile: string,
  passwordFile?: string,
): string {
  const dir = resolve(dirArg);
  const out = resolve(outFile);
  const tmp = join(dirname(out), `.${basename(out)}.${process.pid}.tmp`);
  const pass = passwordFile === undefined ? 'pass:' : `file:${resolve(passwordFile)}`;
  if (passwordFile !== undefined && !existsSync(resolve(passwordFile)))
    throw new PkiError(`--p12-password-file ${passwordFile}: no such file`);
  try {
    openssl(
      [
        'pkcs12',
        '-export',
        '-in',
        cert.certPath,
        '-inkey',
        cert.keyPath,
        '-certfile',
        'ca.crt',
        '-name',
        `${cert.name} (${fleetOf(dir)} operator)`,
        '-out',
        tmp,
        '-passout',
        pass,
      ],
      dir,
    );
    chmodSync(tmp, 0o600);
    renameSync(tmp, out);
  } finally {
    rmSync(tmp, { force: true });
  }
  return out;
}

export interface CertInfo {
  /** Path relative to the PKI directory (ca.crt, server.crt, hosts/web1.crt, ...). */
  file: string;
  kind: 'ca' | 'server' | 'host' | 'operator' | 'issuing-ca' | 'enrolled';
  subject: string;
  serial: string;
  notAfter: string;
  /** ms since the epoch */
  expiresAt: number;
}

/** Every certificate in use in a PKI directory (set-aside revoked/renewed copies are not listed). */
export function listCerts(dirArg: string): CertInfo[] {
  const dir = resolve(dirArg);
  requirePki(dir);
  const files: { file: string; kind: CertInfo['kind'] }[] = [{ file: 'ca.crt', kind: 'ca' }];
  if (existsSync(join(dir, 'server.crt'))) files.push({ file: 'server.crt', kind: 'server' });
  for (const [sub, kind] of [
    ['hosts', 'host'],
    ['operators', 'operator'],
  ] as const) {
    if (!existsSync(join(dir, sub))) continue;
    for (const f of readdirSync(join(dir, sub)).sort()) {
      if (f.endsWith('.crt') && !/\.(revoked|renewed)-[0-9A-F]+\.crt$/.test(f))
        files.push({ file: `${sub}/${f}`, kind });
    }
  }
  return files.map(({ file, kind }) => certInfo(dir, file, kind));
}

function certInfo(dir: string, file: string, kind: CertInfo['kind']): CertInfo {
  let x: X509Certificate;
  try {
    x = new X509Certificate(readFileSync(join(dir, file)));
  } catch (e) {
    throw new PkiError(
      `${join(dir, file)}: not a readable PEM certificate (${(e as Error).message})`,
    );
  }
  return {
    file,
    kind,
    subject: x.subject.split('\n').join(', '),
    serial: x.serialNumber.toUpperCase(),
    notAfter: x.validTo,
    expiresAt: Date.parse(x.validTo),
  };
}

/**
 * The enrolment side's certificates: the issuing CA's, and the newest certificate the enrolment
 * endpoint issued to each host (state DIR/certs; an older one of a host was superseded by a renewal).
 * Paths are relative to `issuingDir` and `stateDir` respectively.
 */
export function listEnrolmentCerts(
  issuingDir: string | undefined,
  stateDir: string | undefined,
): CertInfo[] {
  const out: CertInfo[] = [];
  if (issuingDir !== undefined) out.push(certInfo(resolve(issuingDir), 'ca.crt', 'issuing-ca'));
  if (stateDir !== undefined) {
    const dir = resolve(stateDir);
    if (!existsSync(join(dir, 'certs')))
      throw new PkiError(`${dir} is not an enrolment state directory (no certs/)`);
    // Issue order: the reservation record is appended before each certificate is issued (two
    // certificates issued within one second have equal validity dates); unrecorded files sort first.
    const order = reservationOrder(dir);
    const newest = new Map<string, { info: CertInfo; from: number; rank: number }>();
    for (const f of readdirSync(join(dir, 'certs')).sort()) {
      if (!f.endsWith('.crt')) continue;
      const info = certInfo(dir, `certs/${f}`, 'enrolled');
      const from = Date.parse(new X509Certificate(readFileSync(join(dir, 'certs', f))).validFrom);
      const rank = order.get(f.slice(0, -'.crt'.length)) ?? -1;
      const prev = newest.get(info.subject);
      if (!prev || from > prev.from || (from === prev.from && rank > prev.rank))
        newest.set(info.subject, { info, from, rank });
    }
    out.push(
      ...[...newest.values()].map((n) => n.info).sort((a, b) => a.subject.localeCompare(b.subject)),
    );
  }
  return out;
}

/** Serial -> position in the enrolment endpoint's reservation record (reservations.jsonl), read-only. */
function reservationOrder(stateDir: string): Map<string, number> {
  const order = new Map<string, number>();
  const file = join(stateDir, 'reservations.jsonl');
  if (!existsSync(file)) return order;
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      try {
        const serial = (JSON.parse(line) as { serial?: unknown }).serial;
        if (typeof serial === 'string') order.set(serial, i);
      } catch {
        // A torn last line (the endpoint cuts it at its next start): no certificate was issued for it.
      }
    });
  return order;
}

/** The default warning window of every `nixfleet pki` command. */
export const EXPIRY_WARNING_DAYS = 30;

/** Certificates that expire within `days` of `now` (already expired ones included). */
export function expiringCerts(certs: readonly CertInfo[], days: number, now: number): CertInfo[] {
  return certs.filter((c) => c.expiresAt - now <= days * 86_400_000);
}

/**
 * Renews a certificate: a new certificate for the same subject (and, for the server, the same subject
 * alternative names) and, by default, the same key, so nothing but the .crt has to be redeployed; with
 * `newKey` a new key as well (after a suspected key exposure, then revoke the old certificate). The old
 * certificate is kept aside as NAME.renewed-SERIAL.crt and stays valid until it expires (revoke it to
 * end it sooner). The new .crt (and key) replace the old ones by rename: never a moment without a pair.
 */
export function renewCert(
  dirArg: string,
  certFile: string,
  opts: IssueOptions & { newKey?: boolean } = {},
): IssuedCert {
  const dir = resolve(dirArg);
  requirePki(dir);
  const abs = resolve(certFile);
  if (!abs.startsWith(dir + '/') || !abs.endsWith('.crt') || abs === join(dir, 'ca.crt')) {
    throw new PkiError(
      `${certFile}: renew takes a certificate issued in ${dir} (server.crt, hosts/NAME.crt or operators/NAME.crt); the CA is renewed with a new pki init`,
    );
  }
  if (!existsSync(abs)) throw new PkiError(`${certFile}: no such certificate`);
  const base = abs.slice(dir.length + 1, -'.crt'.length);
  if (!existsSync(join(dir, `${base}.key`)))
    throw new PkiError(`${certFile}: its key ${base}.key is not beside it; renew with --new-key`);
  const old = new X509Certificate(readFileSync(abs));
  const subject = openssl(['x509', '-in', abs, '-noout', '-subject', '-nameopt', 'compat'], dir)
    .trim()
    .replace(/^subject=/, '');
  const server = base === 'server';
  const san = server
    ? (old.subjectAltName ?? '')
        .split(', ')
        .map((n) => n.replace(/^IP Address:/, 'IP:'))
        .join(',')
    : undefined;
  const name = /CN=([^/]+)/.exec(subject)?.[1] ?? base;
  const oldSerial = old.serialNumber.toUpperCase();
  // Issue beside the old pair (temporary names), then swap both in by rename.
  const staging = `${base}.renew-${process.pid}`;
  if (opts.newKey) genKey(`${staging}.key`, readAlgorithm(dir), dir);
  else copyFileSync(join(dir, `${base}.key`), join(dir, `${staging}.key`));
  chmodSync(join(dir, `${staging}.key`), 0o600);
  try {
    issue(dir, staging, name, subject, server ? 'v3_server' : 'v3_client', san, {
      ...opts,
      keepKey: true,
    });
    copyFileSync(abs, join(dir, `${base}.renewed-${oldSerial}.crt`));
    renameSync(join(dir, `${staging}.key`), join(dir, `${base}.key`));
    renameSync(join(dir, `${staging}.crt`), abs);
  } finally {
    rmSync(join(dir, `${staging}.key`), { force: true });
    rmSync(join(dir, `${staging}.crt`), { force: true });
  }
  return { name, certPath: abs, keyPath: join(dir, `${base}.key`), serial: certSerial(abs) };
}

// ---- The enrolment issuing CA ----------------------------------------------------------------------
// A second, online CA for the enrolment endpoint (control-plane/enrolment.ts): signed by the offline
// fleet CA, and limited by its own certificate to what enrolment needs: pathlen 0 (no further CAs),
// extended key usage clientAuth only (OpenSSL refuses it in a server chain), and name constraints
// permitting only subjects under O=<fleet>, OU=agent (no operator certificate, no other fleet's name),
// DNS names only under <fleet>.nixfleet.invalid and no IP address (so no usable server certificate).
// Its key is the only signing key the control-plane side holds.
//
// Layout of an issuing directory:
//   ca.key ca.crt ca.cnf fleet db/{index.txt,crlnumber}  crl.pem (its own CRL, empty: enrolled
//   certificates are short-lived and revoked through the signed revocations)
//   client-ca.pem (fleet CA + issuing CA: nginx's ssl_client_certificate)

export interface IssuingCaPaths {
  dir: string;
  caCert: string;
  caKey: string;
  crl: string;
  /** Fleet CA + issuing CA, the trust anchors nginx (or the embedded server) checks client certificates against. */
  clientCaBundle: string;
}

export function issuingCaPaths(dirArg: string): IssuingCaPaths {
  const dir = resolve(dirArg);
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    crl: join(dir, 'crl.pem'),
    clientCaBundle: join(dir, 'client-ca.pem'),
  };
}

/** Extensions of the issuing CA certificate (see the section comment). */
function issuingCaExtensions(fleet: string): string {
  return `[ v3_issuing ]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
extendedKeyUsage = clientAuth
nameConstraints = critical,permitted;dirName:agent_names,permitted;DNS:${fleet}.nixfleet.invalid,excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0
[ agent_names ]
O = ${fleet}
OU = agent
`;
}

/** The issuing CA's own config: only for its CRL (leaf certificates are issued with `openssl x509 -req`). */
function issuingCaConfig(crlDays: number): string {
  return `[ ca ]
default_ca = issuing_ca
[ issuing_ca ]
dir = .
database = ./db/index.txt
crlnumber = ./db/crlnumber
certificate = ./ca.crt
private_key = ./ca.key
default_md = sha256
default_crl_days = ${crlDays}
`;
}

export interface IssuingCaOptions {
  /** Validity of the issuing CA certificate (default 90 days; rotate by creating a new one). */
  days?: number;
}

/**
 * Creates the enrolment issuing CA in `outDir`, signed by the fleet CA of `pkiDir` (recorded in its
 * database, so `pki revoke` can revoke it). Staged beside `outDir` and renamed into place.
 */
export function initIssuingCa(
  pkiDirArg: string,
  outDirArg: string,
  opts: IssuingCaOptions = {},
): IssuingCaPaths {
  const pki = resolve(pkiDirArg);
  requirePki(pki);
  const out = resolve(outDirArg);
  if (existsSync(out) && readdirSync(out).length > 0)
    throw new PkiError(`${out} exists and is not empty; give a new or empty directory`);
  const fleet = fleetOf(pki);
  const days = opts.days ?? 90;
  const staging = join(dirname(out), `.${basename(out)}.init-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, 'db'), { recursive: true });
  try {
    writeFileSync(join(staging, 'db', 'index.txt'), '');
    writeFileSync(join(staging, 'db', 'crlnumber'), '1000\n');
    writeFileSync(join(staging, 'ca.cnf'), issuingCaConfig(days));
    writeFileSync(join(staging, 'fleet'), fleet + '\n');
    writeFileSync(join(staging, 'issuing.ext'), issuingCaExtensions(fleet));
    genKey('ca.key', readAlgorithm(pki), staging);
    openssl(
      [
        'req',
        '-new',
        '-key',
        'ca.key',
        '-subj',
        `/O=${fleet}/OU=enrolment/CN=${fleet} issuing CA`,
        '-out',
        'ca.csr',
      ],
      staging,
    );
    openssl(
      [
        'ca',
        '-batch',
        '-config',
        'ca.cnf',
        '-extfile',
        join(staging, 'issuing.ext'),
        '-extensions',
        'v3_issuing',
        '-days',
        String(days),
        '-in',
        join(staging, 'ca.csr'),
        '-out',
        join(staging, 'ca.crt'),
        '-notext',
      ],
      pki,
    );
    rmSync(join(staging, 'ca.csr'));
    writeFileSync(
      join(staging, 'client-ca.pem'),
      readFileSync(join(pki, 'ca.crt'), 'utf8') + readFileSync(join(staging, 'ca.crt'), 'utf8'),
    );
    openssl(['ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem'], staging);
    if (existsSync(out)) rmdirSync(out);
    renameSync(staging, out);
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e;
  }
  return issuingCaPaths(out);
}

/** Re-signs the issuing CA's (empty) CRL: nginx checks a CRL for every CA of a chain, and an expired one locks everyone out. */
export function refreshIssuingCrl(dirArg: string): string {
  const dir = resolve(dirArg);
  openssl(['ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem.tmp'], dir);
  writeFileAtomic(join(dir, 'crl.pem'), readFileSync(join(dir, 'crl.pem.tmp')));
  rmSync(join(dir, 'crl.pem.tmp'));
  return join(dir, 'crl.pem');
}

/** The fleet an issuing directory belongs to (its name constraints are for this O=). */
export function issuingFleet(dirArg: string): string {
  const dir = resolve(dirArg);
  if (!existsSync(join(dir, 'ca.key')) || !existsSync(join(dir, 'fleet')))
    throw new PkiError(
      `${dir} is not an issuing CA directory (no ca.key / fleet); create one with: nixfleet pki issuing-ca --pki PKI --out ${dir}`,
    );
  return readFileSync(join(dir, 'fleet'), 'utf8').trim();
}

const LEAF_CLIENT_EXTENSIONS = `basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
`;

/** A CSR's public key (SPKI PEM) after checking its self-signature; only P-256 and Ed25519 keys. */
export function csrPublicKey(csrPem: string): string {
  if (
    !/^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE REQUEST-----\n?$/.test(
      csrPem,
    )
  )
    throw new PkiError('csr: expected one PEM certificate request');
  const out = openssl(['req', '-noout', '-verify', '-pubkey'], '/', csrPem);
  const pem = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----\n/.exec(out)?.[0];
  if (!pem) throw new PkiError('csr: no public key');
  const key = createPublicKey(pem);
  const ok =
    key.asymmetricKeyType === 'ed25519' ||
    (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1');
  if (!ok)
    throw new PkiError(
      `csr: key type ${key.asymmetricKeyType} is not accepted (ECDSA P-256 or Ed25519)`,
    );
  return pem;
}

/** sha256 of a public key's DER SubjectPublicKeyInfo: one key, one digest, whatever wraps it. */
export function publicKeyDigest(pem: string | KeyObject): string {
  const key = typeof pem === 'string' ? createPublicKey(pem) : pem;
  return sha256Digest(key.export({ type: 'spki', format: 'der' }));
}

export interface LeafSpec {
  host: string;
  /** Uppercase hex, chosen by the caller (recorded before issuing, so a retry issues the same serial). */
  serial: string;
  days: number;
}

/**
 * Issues a host client certificate (CN = host, OU = agent, clientAuth, `days`) for a CSR's key from the
 * issuing CA. Nothing of the CSR but its key is used. Written to `certOut` atomically.
 */
export function issueFromCsr(
  issuingDirArg: string,
  csrPem: string,
  spec: LeafSpec,
  certOut: string,
): void {
  const dir = resolve(issuingDirArg);
  const fleet = issuingFleet(dir);
  checkName(spec.host, 'host');
  const tmp = mkdtempSync(join(dir, '.issue-'));
  try {
    writeFileSync(join(tmp, 'req.csr'), csrPem);
    writeFileSync(join(tmp, 'leaf.ext'), LEAF_CLIENT_EXTENSIONS);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        join(tmp, 'req.csr'),
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-set_serial',
        `0x${spec.serial}`,
        '-days',
        String(spec.days),
        '-subj',
        `/O=${fleet}/OU=agent/CN=${spec.host}`,
        '-sha256',
        '-extfile',
        join(tmp, 'leaf.ext'),
        '-out',
        join(tmp, 'leaf.crt'),
      ],
      dir,
    );
    writeFileAtomic(certOut, readFileSync(join(tmp, 'leaf.crt')));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * nginx checks a CRL for every CA of a chain, from one file: the fleet CA's CRL and the issuing CA's,
 * concatenated into `<issuing>/crl-chain.pem` (atomic). Rewrite it (and reload nginx) whenever either
 * changes: `nixfleet nginx-config --issuing DIR` does.
 */
export function writeCrlChain(pkiDirArg: string, issuingDirArg: string): string {
  const pki = pkiPaths(pkiDirArg);
  const issuing = issuingCaPaths(issuingDirArg);
  const out = join(issuing.dir, 'crl-chain.pem');
  writeFileAtomic(out, readFileSync(pki.crl, 'utf8') + readFileSync(issuing.crl, 'utf8'));
  return out;
}
