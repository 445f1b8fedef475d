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

// Reflection needs our files and google.rpc (so grpcurl can decode ErrorInfo
// details). Two builds with their imports; a FileDescriptorSet is a repeated
// field, so the concatenated bytes are one valid set. The inputs share no file.
const dir = join(tmpdir(), `eventbank-gen-${process.pid}`);
mkdirSync(dir, { recursive: true });
buf(["build", "proto", "-o", join(dir, "bank.binpb")]);
buf([
  "build", "node_modules/google-proto-files",
  "--path", "node_modules/google-proto-files/google/rpc/error_details.proto",
  "--path", "node_modules/google-proto-files/google/rpc/status.proto",
  "-o", join(dir, "rpc.binpb"),
]);
mkdirSync("server/gen", { recursive: true });
writeFileSync(
  "server/gen/descriptor-set.binpb",
  Buffer.concat([readFileSync(join(dir, "bank.binpb")), readFileSync(join(dir, "rpc.binpb"))]),
);
rmSync(dir, { recursive: true, force: true });
