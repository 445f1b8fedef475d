/**
 * Optional hooks the command handler calls, so metrics and traces can watch
 * command handling without the handler knowing about either (the
 * implementation is server/src/observability/command-observer.ts).
 */
import type { CommandContext } from "./command-runtime.js";

/** The caller's trace (W3C ids of the RPC's server span), written into event metadata. */
export interface CommandTrace {
  traceId: string;
  spanId: string;
  traceFlags: number;
}

export type CommandStep = "load" | "decide" | "append";

export interface CommandStepInfo {
  stream: string;
  /** Commands decided together (one append). */
  batchSize: number;
  /** 1 for the first try; more after conflicts with other writers. */
  attempt: number;
  /** The revision the append expects (decide, append). */
  expectedRevision?: bigint | "no_stream";
}

export interface CommandHooks {
  /** Runs one step of a batch; `commands` are the batch's commands (e.g. for one span per caller). */
  step?<T>(step: CommandStep, commands: readonly CommandContext[], info: CommandStepInfo, run: () => T): T;
  /** A command's answer: `error` undefined when accepted. */
  settled?(command: string, error: unknown): void;
  /** Commands of one account decided together. */
  batch?(size: number): void;
  /** Loading an account found it in the cache or not. */
  cacheLookup?(hit: boolean): void;
  snapshotRead?(result: "found" | "none"): void;
  snapshotWritten?(): void;
  /** A command id seen before got its first outcome again. */
  repeatAnswered?(): void;
  /** An append is tried again after a conflict with another writer. */
  appendRetried?(): void;
}
