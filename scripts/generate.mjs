// Regenerates everything derived from proto/: the ts-proto code in
// client/src/gen and the descriptor set that server reflection serves.
// Deterministic, offline: `npm run generate`.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const buf = (args, opts = {}) => execFileSync("npx", ["--no-install", "buf", ...args], { stdio: "inherit", ...opts });

rmSync("client/src/gen", { recursive: true, force: true });
buf(["generate"]);

// Reflection serves our files, google.rpc (so grpcurl can decode ErrorInfo
// details) and grpc.health.v1. One build each, with imports; a
// FileDescriptorSet is a repeated field, so the concatenated bytes are one
// valid set. The inputs share no file.
const dir = join(tmpdir(), `eventbank-gen-${process.pid}`);
mkdirSync(dir, { recursive: true });
buf(["build", "proto", "-o", join(dir, "bank.binpb")]);
buf([
  "build", "node_modules/google-proto-files",
  "--path", "node_modules/google-proto-files/google/rpc/error_details.proto",
  "--path", "node_modules/google-proto-files/google/rpc/status.proto",
  "-o", join(dir, "rpc.binpb"),
]);
buf([
  "build", "node_modules/grpc-health-check/proto",
  "--path", "node_modules/grpc-health-check/proto/health/v1/health.proto",
  "-o", join(dir, "health.binpb"),
]);
mkdirSync("server/gen", { recursive: true });
writeFileSync(
  "server/gen/descriptor-set.binpb",
  Buffer.concat(["bank", "rpc", "health"].map((name) => readFileSync(join(dir, `${name}.binpb`)))),
);
rmSync(dir, { recursive: true, force: true });
