/** Child processes for the bench: servers on a free port, and forked load generators. */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { credentials, Client } from "@grpc/grpc-js";
import { closeSync, openSync, readFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import type { LoadMessage, LoadReply, RoundRequest, RoundResult } from "./load.js";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface ServerChild {
  child: ChildProcess;
  address: string;
  /** Resident set size now, in MiB (from /proc). */
  rssMiB(): number;
  /** CPU time used so far (user + system), in ms. */
  cpuMs(): number;
  /** I/O so far, from /proc: bytes written to storage, and read syscalls (files and sockets). */
  io(): ProcessIo;
  stop(): Promise<void>;
}

/**
 * Starts `node --import tsx <script>` on a free port, with stdout going to
 * `logFile` (a file, like a deployment's log, so the bench process spends no
 * CPU reading log lines), and waits until the port accepts gRPC calls. (Not
 * the "listening" log line: the bench runs the server at LOG_LEVEL=warn.)
 */
export async function startServer(script: string, env: Record<string, string>, logFile: string): Promise<ServerChild> {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const out = openSync(logFile, "w");
  // BENCH_SERVER_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", to look inside a server.
  const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", script], {
    cwd: ROOT,
    // Metrics stay on as by default, on a free port (other servers, other benches may run beside).
    env: { ...process.env, HOST: "127.0.0.1", PORT: String(port), EVENTBANK_METRICS_PORT: String(await freePort()), ...env },
    stdio: ["ignore", out, "pipe"],
  });
  closeSync(out);
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  let exited = false;
  const exit = once(child, "exit").then(() => (exited = true));
  const deadline = Date.now() + 30_000;
  const probe = new Client(address, credentials.createInsecure());
  try {
    while (!(await probeOnce(probe))) {
      if (exited) throw new Error(`${script} exited before listening: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`${script} did not start in time: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    probe.close();
  }
  return {
    child,
    address,
    rssMiB: () => rssMiB(child.pid!),
    cpuMs: () => cpuMs(child.pid!),
    io: () => processIo(child.pid!),
    stop: async () => {
      if (exited) return;
      child.kill("SIGTERM");
      await exit;
    },
  };
}

function probeOnce(client: Client): Promise<boolean> {
  return new Promise((resolve) => client.waitForReady(Date.now() + 200, (error) => resolve(!error)));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface LoadChild {
  /** Opens the accounts; `fund`: deposits enough for transfer rounds too. */
  setup(address: string, accounts: string[], fund?: boolean): Promise<void>;
  round(request: Omit<RoundRequest, "type">): Promise<RoundResult>;
  cpuMs(): number;
  stop(): void;
}

export function startLoad(): LoadChild {
  const child = fork(fileURLToPath(new URL("./load.ts", import.meta.url)), [], {
    cwd: ROOT,
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const ask = (message: LoadMessage) =>
    new Promise<LoadReply>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`load process exited (${code})`));
      child.once("exit", onExit);
      child.once("message", (reply: LoadReply) => {
        child.off("exit", onExit);
        if (reply.type === "error") reject(new Error(`load process: ${reply.message}`));
        else resolve(reply);
      });
      child.send(message);
    });
  return {
    setup: async (address, accounts, fund = false) => void (await ask({ type: "setup", address, accounts, fund })),
    round: async (request) => {
      const reply = await ask({ type: "round", ...request });
      if (reply.type !== "done") throw new Error(`unexpected reply ${reply.type}`);
      return reply.result;
    },
    cpuMs: () => cpuMs(child.pid!),
    stop: () => child.disconnect(),
  };
}

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Math.round(Number(match[1]) / 102.4) / 10 : NaN;
}

export interface ProcessIo {
  writeBytes: number;
  readSyscalls: number;
}

function processIo(pid: number): ProcessIo {
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, "m").exec(io)?.[1] ?? NaN);
  return { writeBytes: field("write_bytes"), readSyscalls: field("syscr") };
}

/** utime + stime of a process, in ms (clock ticks are 10 ms on Linux). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
