/**
 * The server as its own OS process (`node --import tsx server/src/main.ts`, or
 * the compiled `node dist/server/src/main.js` as production runs it), for what
 * only a process can show: signals, kill -9, restarts, start-up errors.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Which code the process runs: the TypeScript sources through tsx (default) or the build in dist/ (`npm run build:server`). */
export type ServerEntry = "source" | "compiled";

const ENTRY_ARGS: Record<ServerEntry, string[]> = {
  source: ["--import", "tsx", "server/src/main.ts"],
  compiled: ["--enable-source-maps", "dist/server/src/main.js"],
};

export interface ServerProcess {
  child: ChildProcess;
  address: string;
  /** stdout lines so far (JSON logs). */
  lines: string[];
  stderr(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

export async function startServerProcess(env: Record<string, string>, timeoutMs = 20_000, entry: ServerEntry = "source"): Promise<ServerProcess> {
  const child = spawn(process.execPath, ENTRY_ARGS[entry], {
    cwd: ROOT,
    env: { ...process.env, HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "info", EVENTBANK_METRICS_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, "exit").then(([code, signal]) => (code ?? signal) as number | string);
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Nobody will stop a server this call never returned: stop it here.
      child.kill("SIGKILL");
      reject(new Error(`server did not start in time: ${stderr}`));
    }, timeoutMs);
    let buffered = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        lines.push(line);
        const parsed = safeParse(line);
        if (parsed?.msg === "eventbank listening") {
          clearTimeout(timer);
          resolve(String(parsed.address));
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      // The server logs a start-up failure as JSON on stdout, so show both streams.
      reject(new Error(`server exited (${code}) before listening:\n${lines.join("\n")}${buffered}\n${stderr}`));
    });
  });
  return { child, address, lines, stderr: () => stderr, exited };
}

/**
 * Runs the server expecting it to refuse to start; returns exit code, both streams and the
 * stdout lines parsed as JSON (undefined for a line that is not).
 */
export async function runServerExpectingFailure(
  env: Record<string, string>,
  entry: ServerEntry = "source",
): Promise<{ code: number | string; stderr: string; stdout: string; lines: Array<Record<string, unknown> | undefined> }> {
  const child = spawn(process.execPath, ENTRY_ARGS[entry], {
    cwd: ROOT,
    env: { ...process.env, HOST: "127.0.0.1", PORT: "0", EVENTBANK_METRICS_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  // A server that hangs instead of exiting is killed, and shows as SIGKILL.
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  const [code, signal] = await once(child, "exit");
  clearTimeout(timer);
  const lines = stdout.split("\n").filter(Boolean).map(safeParse);
  return { code: (code ?? signal) as number | string, stderr, stdout, lines };
}

function safeParse(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
