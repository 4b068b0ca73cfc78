/**
 * Throwaway certificate authority for the HTTPS mock.
 *
 * Creates, with the system `openssl`, a self-signed CA and a server certificate for
 * `127.0.0.1` and `localhost` (subjectAltName IP and DNS) signed by it. Clients trust the CA
 * only explicitly: `DENO_CERT=<caCertFile>` for spawned Deno processes, or
 * `Deno.createHttpClient({ caCerts: [caCertPem] })` in-process. Nothing here (or anywhere in the
 * mock) turns TLS verification off.
 */

export interface TestCa {
  /** Absolute path of the CA certificate (PEM): the value for `DENO_CERT`. */
  caCertFile: string;
  /** The CA certificate itself (PEM), for `Deno.createHttpClient({ caCerts })`. */
  caCertPem: string;
  /** Server certificate (PEM) for 127.0.0.1 / localhost, signed by the CA. */
  certPem: string;
  /** Server private key (PKCS#8 PEM). */
  keyPem: string;
  /** Paths of the server certificate and key, for tools that want files (curl, other servers). */
  certFile: string;
  keyFile: string;
}

const VALIDITY_DAYS = "7";

const SERVER_EXTENSIONS = [
  "basicConstraints=critical,CA:FALSE",
  "keyUsage=critical,digitalSignature,keyEncipherment",
  "extendedKeyUsage=serverAuth",
  "subjectAltName=IP:127.0.0.1,DNS:localhost",
  "subjectKeyIdentifier=hash",
  "authorityKeyIdentifier=keyid,issuer",
].join("\n") + "\n";

/** Runs openssl with `args` in `cwd`; throws with openssl's own message on failure. */
async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`openssl ${args[0]} failed (exit ${out.code}): ${stderr}`);
  }
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f; // positive serial
  return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/**
 * Generates a fresh CA and server certificate in `dir` (created if missing; existing files of
 * the same names are overwritten): `ca.pem`, `ca.key`, `server.pem`, `server.key`.
 */
export async function generateTestCa(dir: string): Promise<TestCa> {
  await Deno.mkdir(dir, { recursive: true });
  const abs = await Deno.realPath(dir);
  const path = (name: string) => `${abs}/${name}`;
  await openssl([
    "req",
    "-x509",
    ...EC_KEY,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    VALIDITY_DAYS,
    "-subj",
    "/CN=hlf-dynamics-sync throwaway test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], abs);
  await openssl([
    "req",
    "-new",
    ...EC_KEY,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=localhost",
  ], abs);
  await Deno.writeTextFile(path("server.ext"), SERVER_EXTENSIONS);
  await openssl([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-set_serial",
    randomSerial(),
    "-days",
    VALIDITY_DAYS,
    "-extfile",
    "server.ext",
    "-out",
    "server.pem",
  ], abs);
  await Promise.all([Deno.remove(path("server.csr")), Deno.remove(path("server.ext"))]);
  await Promise.all([Deno.chmod(path("ca.key"), 0o600), Deno.chmod(path("server.key"), 0o600)]);
  const [caCertPem, certPem, keyPem] = await Promise.all(
    ["ca.pem", "server.pem", "server.key"].map((n) => Deno.readTextFile(path(n))),
  );
  return {
    caCertFile: path("ca.pem"),
    caCertPem,
    certPem,
    keyPem,
    certFile: path("server.pem"),
    keyFile: path("server.key"),
  };
}
