/**
 * Clients for the generic services a gRPC tool like grpcurl talks to:
 * grpc.health.v1 and server reflection, loaded from the protos their npm
 * packages ship.
 */
import { credentials, loadPackageDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const healthProto = join(dirname(require.resolve("grpc-health-check")), "..", "..", "proto", "health", "v1", "health.proto");
const reflectionProtos = join(dirname(require.resolve("@grpc/reflection")), "..", "proto", "grpc", "reflection");

/** Health.Check for one service name; resolves with the status name (e.g. "SERVING"). */
export async function checkHealth(address: string, service: string): Promise<string> {
  const pkg = loadPackageDefinition(loadSync(healthProto, { enums: String })) as any;
  const health = new pkg.grpc.health.v1.Health(address, credentials.createInsecure());
  try {
    const answer = await new Promise<{ status: string }>((resolve, reject) =>
      health.check({ service }, (error: Error | null, response: { status: string }) => (error ? reject(error) : resolve(response))),
    );
    return answer.status;
  } finally {
    health.close();
  }
}

/**
 * Sends one ServerReflectionInfo request and resolves with the first
 * response; rejects with the call's error (e.g. UNIMPLEMENTED when off).
 */
export async function askReflection(address: string, version: "v1" | "v1alpha", request: object): Promise<any> {
  const pkg = loadPackageDefinition(loadSync(join(reflectionProtos, version, "reflection.proto"))) as any;
  const reflection = new pkg.grpc.reflection[version].ServerReflection(address, credentials.createInsecure());
  try {
    return await new Promise<any>((resolve, reject) => {
      const stream = reflection.ServerReflectionInfo();
      stream.on("data", (response: unknown) => {
        resolve(response);
        stream.end();
      });
      stream.on("error", reject);
      stream.write(request);
    });
  } finally {
    reflection.close();
  }
}
