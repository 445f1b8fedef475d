/**
 * The container's HEALTHCHECK: asks this server's grpc.health.v1.Health over gRPC, as
 * an orchestrator would, with no binary beyond node. Exit 0 when the service is SERVING,
 * 1 otherwise (NOT_SERVING, unknown service, no answer within the deadline).
 *
 *   node dist/server/src/healthcheck.js [service]     (default: bank.v1.AccountService)
 *
 * Reads the server's own settings: PORT, HOST (a wildcard address is asked on loopback)
 * and EVENTBANK_TLS_CERT_FILE (then it speaks TLS without verifying the certificate: the
 * probe only asks its own process). Under mutual TLS (EVENTBANK_TLS_CLIENT_CA_FILE) the
 * probe has no client certificate and fails: replace the HEALTHCHECK there.
 */
import { credentials, makeGenericClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";

const DEADLINE_MS = 3_000;
const service = process.argv[2] ?? "bank.v1.AccountService";
const port = process.env.PORT?.trim() || "50051";
const host = process.env.HOST?.trim() || "127.0.0.1";
const target = `${["0.0.0.0", "::", "[::]"].includes(host) ? "127.0.0.1" : host}:${port}`;
const channelCredentials = process.env.EVENTBANK_TLS_CERT_FILE?.trim()
  ? credentials.createSsl(null, null, null, { rejectUnauthorized: false })
  : credentials.createInsecure();

const Health = makeGenericClientConstructor(healthService, "Health");
const client = new Health(target, channelCredentials);
client.makeUnaryRequest(
  "/grpc.health.v1.Health/Check",
  healthService.Check!.requestSerialize,
  healthService.Check!.responseDeserialize,
  { service },
  { deadline: Date.now() + DEADLINE_MS },
  (error: ServiceError | null, response?: { status?: string }) => {
    client.close();
    if (error) {
      console.error(`${service} at ${target}: ${error.message}`);
      process.exit(1);
    }
    console.log(`${service} at ${target}: ${response?.status}`);
    process.exit(response?.status === "SERVING" ? 0 : 1);
  },
);
