// `npm run build:server`: compiles the server to dist/ (see tsconfig.build.json) from scratch,
// then copies what it reads at run time beside its modules (server/gen: the descriptor set for reflection).
import { execFileSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin", "tsc");

rmSync(new URL("../dist", import.meta.url), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" });
cpSync(new URL("../server/gen", import.meta.url), new URL("../dist/server/gen", import.meta.url), { recursive: true });
