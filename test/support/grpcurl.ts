/**
 * The real grpcurl for tests: where it is, the commands README.md shows, and
 * running them through bash exactly as a user pastes them (only the port
 * differs), one-shot or as a stream that is ended like Ctrl-C.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** The address the README's commands use. */
export const README_ADDRESS = "127.0.0.1:50051";

/** grpcurl on PATH, else ../shared/tools/grpcurl beside the repository, else undefined. */
export function findGrpcurl(): string | undefined {
  const candidates = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean).map((dir) => join(dir, "grpcurl")), join(ROOT, "..", "shared", "tools", "grpcurl")];
  return candidates.find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export interface ReadmeCommand {
  /** The command as written, continuation lines included. */
  text: string;
  /** The `##` heading it appears under. */
  section: string;
}

/** Every command starting with `grpcurl` in the README's ```sh blocks, in order. */
export function readmeGrpcurlCommands(readme: string): ReadmeCommand[] {
  const commands: ReadmeCommand[] = [];
  let section = "";
  let inShell = false;
  let pending: string[] | undefined;
  for (const line of readme.split("\n")) {
    const fence = /^\s*```(\w*)/.exec(line);
    if (fence) {
      inShell = !inShell && fence[1] === "sh";
      continue;
    }
    if (!inShell) {
      if (line.startsWith("## ")) section = line.slice(3).trim();
      continue;
    }
    if (!pending && /^\s*grpcurl\s/.test(line)) pending = [];
    if (!pending) continue;
    pending.push(line);
    if (!line.endsWith("\\")) {
      commands.push({ text: pending.join("\n"), section });
      pending = undefined;
    }
  }
  return commands;
}

export interface ShellResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function shell(command: string, grpcurl: string, address: string, env: Record<string, string>): ChildProcess {
  // Only the port changes; the command runs through bash as pasted, finding grpcurl on PATH.
  const text = command.replaceAll(README_ADDRESS, address);
  return spawn("bash", ["-c", text], {
    cwd: ROOT,
    env: { ...process.env, PATH: `${dirname(grpcurl)}${delimiter}${process.env.PATH ?? ""}`, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group, so a Ctrl-C (SIGINT) reaches grpcurl whatever bash does.
    detached: true,
  });
}

/** Runs a command to its end. */
export function runCommand(command: string, grpcurl: string, address: string, env: Record<string, string> = {}, timeoutMs = 15_000): Promise<ShellResult> {
  const child = shell(command, grpcurl, address, env);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.kill(-child.pid!, "SIGKILL");
      reject(new Error(`timed out after ${timeoutMs} ms: ${command}\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface StreamingCommand {
  /** The JSON messages printed so far. */
  messages: Array<Record<string, any>>;
  /** Resolves once a printed message satisfies `predicate` (rejects after `timeoutMs` with what was seen). */
  waitFor(predicate: (message: Record<string, any>) => boolean, timeoutMs?: number): Promise<void>;
  /** Ctrl-C: SIGINT to the command, then waits for it to exit; returns its stderr. */
  interrupt(): Promise<string>;
}

/** Starts a command that streams (a subscription) and parses its output as it comes. */
export function startStreamingCommand(command: string, grpcurl: string, address: string): StreamingCommand {
  const child = shell(command, grpcurl, address, {});
  const messages: Array<Record<string, any>> = [];
  let pending = "";
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout!.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    pending += chunk.toString();
    // grpcurl prints each message as indented JSON ending with "}" alone on a line.
    let end: number;
    while ((end = pending.indexOf("\n}\n")) >= 0) {
      messages.push(JSON.parse(pending.slice(0, end + 2)) as Record<string, any>);
      pending = pending.slice(end + 3);
    }
  });
  const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
  return {
    messages,
    async waitFor(predicate, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!messages.some(predicate)) {
        if (Date.now() > deadline || child.exitCode !== null) {
          throw new Error(`not seen from ${command}:\nstdout: ${stdout}\nstderr: ${stderr}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async interrupt() {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, "SIGINT");
      await exited;
      return stderr;
    },
  };
}

export interface GrpcurlError {
  code: string;
  message: string;
  /** The status details, e.g. a google.rpc.ErrorInfo with "@type", "reason", "domain", "metadata". */
  details: Array<Record<string, any>>;
}

/** Parses what grpcurl prints on stderr for a call that ended with an error status. */
export function parseGrpcurlError(stderr: string): GrpcurlError {
  const code = /^ {2}Code: (\w+)$/m.exec(stderr)?.[1];
  const message = /^ {2}Message: (.*)$/m.exec(stderr)?.[1];
  if (!stderr.startsWith("ERROR:\n") || code === undefined || message === undefined) throw new Error(`not a grpcurl error status:\n${stderr}`);
  // Each detail is "  N)\t" then indented JSON whose continuation lines start with "    \t".
  const details = stderr
    .split(/^ {2}\d+\)\t/m)
    .slice(1)
    .map((block) => JSON.parse(block.replace(/^ {4}\t/gm, "")) as Record<string, any>);
  return { code, message, details };
}
