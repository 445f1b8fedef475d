/**
 * A throw-away CA and a server certificate for 127.0.0.1 / localhost, made
 * with openssl in a temporary directory (nothing is committed), for the
 * double's secure mode: `startEsdbDouble({ secure: await testCertificates() })`.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCertificates {
  key: Buffer;
  cert: Buffer;
  /** PEM file of the CA, for `tlsCAFile=` in the connection string. */
  caFile: string;
  /** Removes the directory. */
  remove(): void;
}

export function testCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "esdb-double-tls-"));
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=eventbank test CA",
    "-keyout", file("ca.key"), "-out", file("ca.crt"));
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", file("node.key"), "-out", file("node.csr"));
  writeFileSync(file("node.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
  openssl("x509", "-req", "-in", file("node.csr"), "-CA", file("ca.crt"), "-CAkey", file("ca.key"), "-CAcreateserial",
    "-days", "1", "-extfile", file("node.ext"), "-out", file("node.crt"));
  return {
    key: readFileSync(file("node.key")),
    cert: readFileSync(file("node.crt")),
    caFile: file("ca.crt"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
