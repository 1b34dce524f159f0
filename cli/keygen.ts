import { existsSync } from 'node:fs';
import {
  EXIT_OK,
  EXIT_USAGE,
  UsageError,
  output,
  parseCommandArgs,
  type Command,
} from './command.ts';
import {
  b64,
  newSigningKey,
  publicPart,
  writePrivateKey,
  writePublicKey,
} from '../protocol/index.ts';

function defaultPublicPath(out: string): string {
  return out.endsWith('.key') ? out.slice(0, -'.key'.length) + '.pub' : `${out}.pub`;
}

const command: Command = {
  name: 'keygen',
  summary: 'generate an Ed25519 signing key (root, release or host key)',
  help: `Usage: nixfleet keygen --name NAME --out FILE [--public FILE] [--force] [--json]

Writes a private key file (mode 0600) and its public key file alongside
(FILE with .key replaced by .pub, or FILE.pub; --public overrides).
The key id is the hex SHA-256 of the raw 32-byte public key.
Refuses to overwrite an existing file unless --force is given.

Options:
  --name NAME    key name recorded in the files and in trust roots (letters, digits, . _ -)
  --out FILE     private key file to write
  --public FILE  public key file to write
  --force        overwrite existing files
  --json         print {name, keyid, publicKey, private, public} as JSON`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      name: { type: 'string' },
      out: { type: 'string' },
      public: { type: 'string' },
      force: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    });
    if (!values.name) throw new UsageError('--name is required');
    if (!values.out) throw new UsageError('--out is required');
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(values.name))
      throw new UsageError('--name: use letters, digits, . _ - (at most 64)');
    const pub = values.public ?? defaultPublicPath(values.out);
    for (const f of [values.out, pub]) {
      if (existsSync(f) && !values.force) {
        process.stderr.write(`nixfleet keygen: ${f} already exists (use --force to overwrite)\n`);
        return EXIT_USAGE;
      }
    }
    const key = newSigningKey(values.name);
    writePrivateKey(values.out, key);
    writePublicKey(pub, publicPart(key));
    output(
      values.json,
      {
        name: key.name,
        keyid: key.keyid,
        publicKey: b64(key.publicKey),
        private: values.out,
        public: pub,
      },
      () => `key "${key.name}" ${key.keyid}\n  private: ${values.out} (0600)\n  public:  ${pub}`,
    );
    return EXIT_OK;
  },
};
export default command;
