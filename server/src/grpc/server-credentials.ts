/** Server credentials: TLS from files (optionally mutual TLS), else plaintext. */
import { ServerCredentials } from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import type { TlsConfig } from "../config.js";

export function serverCredentials(tls: TlsConfig | undefined): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  const clientCa = tls.clientCaFile ? readFileSync(tls.clientCaFile) : null;
  return ServerCredentials.createSsl(
    clientCa,
    [{ cert_chain: readFileSync(tls.certFile), private_key: readFileSync(tls.keyFile) }],
    // With a client CA, a client without a certificate it signed is refused at the handshake.
    clientCa !== null,
  );
}
