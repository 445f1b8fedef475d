/**
 * A grpc.health.v1 client on its own channel that stays open: Check with a
 * deadline (to measure how fast the server answers) and Watch (every status
 * the server streams).
 */
import { credentials, loadPackageDefinition, type ClientReadableStream } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const healthProto = join(dirname(require.resolve("grpc-health-check")), "..", "..", "proto", "health", "v1", "health.proto");

export interface HealthWatch {
  /** Every status received so far, in order (e.g. ["SERVING", "NOT_SERVING", "SERVING"]). */
  statuses: string[];
  cancel(): void;
}

export interface HealthClient {
  /** Resolves with the status name; rejects after `timeoutMs` (a stalled server fails here). */
  check(service: string, timeoutMs?: number): Promise<string>;
  watch(service: string): HealthWatch;
  close(): void;
}

export function healthClient(address: string): HealthClient {
  const pkg = loadPackageDefinition(loadSync(healthProto, { enums: String })) as any;
  const client = new pkg.grpc.health.v1.Health(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
  return {
    check: (service, timeoutMs = 5_000) =>
      new Promise((resolve, reject) =>
        client.check({ service }, { deadline: new Date(Date.now() + timeoutMs) }, (error: Error | null, response: { status: string }) =>
          error ? reject(error) : resolve(response.status),
        ),
      ),
    watch(service) {
      const statuses: string[] = [];
      const stream: ClientReadableStream<{ status: string }> = client.watch({ service });
      stream.on("data", (response: { status: string }) => statuses.push(response.status));
      stream.on("error", () => undefined); // cancelled at the end of the test
      return { statuses, cancel: () => stream.cancel() };
    },
    close: () => client.close(),
  };
}
