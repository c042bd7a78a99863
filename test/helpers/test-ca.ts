// A throwaway certificate authority for TLS tests, made at test time with the
// openssl CLI (node:crypto verifies X.509 but cannot issue it): a CA, and
// server certificates for given names/IPs, optionally already expired. Nothing
// here is committed; every file lives in a temp directory the caller removes.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface TestCa {
  dir: string;
  /** CA certificate (PEM file). */
  caCert: string;
  caKey: string;
  /** A server certificate + key for `names` (DNS names or IP literals), signed by this CA. */
  issue(label: string, names: string[], opts?: { expired?: boolean }): { cert: string; key: string };
  cleanup(): void;
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export function makeTestCa(name = 'pilot-test-ca', dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-ca-'))): TestCa {
  const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const caCert = path.join(dir, `${name}.crt`);
  const caKey = path.join(dir, `${name}.key`);
  run([
    'req',
    '-x509',
    ...EC,
    '-keyout',
    caKey,
    '-out',
    caCert,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  ]);
  return {
    dir,
    caCert,
    caKey,
    issue(label, names, opts = {}) {
      const key = path.join(dir, `${label}.key`);
      const csr = path.join(dir, `${label}.csr`);
      const cert = path.join(dir, `${label}.crt`);
      const ext = path.join(dir, `${label}.ext`);
      run(['req', ...EC, '-keyout', key, '-out', csr, '-subj', `/CN=${names[0] ?? label}`]);
      const san = names.map((n) => (net.isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
      fs.writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
      // -days -1: notAfter a day before notBefore (= now), so the certificate is expired from the start.
      run(['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-days', opts.expired ? '-1' : '2', '-extfile', ext, '-out', cert]);
      return { cert, key };
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
