/**
 * CommandHooks for the command handler: command metrics, and (when tracing
 * is on) a span per step (load, decide, append) under each caller's server
 * span, so every command's trace shows the whole batch it was part of.
 */
import type { Span } from "@opentelemetry/api";
import type { CommandHooks } from "../app/command-hooks.js";
import { mapError } from "../grpc/status-mapping.js";
import type { Metrics } from "./metrics.js";
import type { CounterChild } from "./plain-counter.js";
import { contextOf } from "./rpc-observer.js";
import type { Tracing } from "./tracing.js";

export function createCommandObserver(metrics: Metrics | undefined, tracing: Tracing | undefined): CommandHooks {
  const hooks: CommandHooks = {};
  if (metrics) {
    const { commands, store } = metrics;
    const hit = commands.cache.labels({ result: "hit" });
    const miss = commands.cache.labels({ result: "miss" });
    const accepted = new Map<string, CounterChild>();
    hooks.settled = (command, error) => {
      if (error !== undefined) return commands.outcomes.labels({ command, outcome: mapError(error).reason }).inc();
      let child = accepted.get(command);
      if (!child) accepted.set(command, (child = commands.outcomes.labels({ command, outcome: "accepted" })));
      child.inc();
    };
    hooks.batch = (size) => commands.batchSize.observe(size);
    hooks.cacheLookup = (found) => (found ? hit : miss).inc();
    hooks.snapshotRead = (result) => commands.snapshots.inc({ operation: "read", result });
    hooks.snapshotWritten = () => commands.snapshots.inc({ operation: "write", result: "ok" });
    hooks.repeatAnswered = () => commands.repeatsAnswered.inc();
    hooks.appendRetried = () => store.retries.inc();
  }
  if (tracing) {
    hooks.step = (step, contexts, info, run) => {
      const attributes = {
        "eventbank.stream": info.stream,
        "eventbank.batch_size": info.batchSize,
        "eventbank.attempt": info.attempt,
        ...(info.expectedRevision === undefined ? {} : { "eventbank.expected_revision": String(info.expectedRevision) }),
      };
      const spans: Span[] = [];
      for (const { trace } of contexts) {
        if (trace) spans.push(tracing.tracer.startSpan(step, { attributes }, contextOf(trace)));
      }
      const end = (error?: unknown) => {
        for (const span of spans) {
          if (error !== undefined) span.recordException(error instanceof Error ? error : String(error));
          span.end();
        }
      };
      let result;
      try {
        result = run();
      } catch (error) {
        end(error);
        throw error;
      }
      if (result instanceof Promise) {
        result.then(() => end(), end);
      } else {
        end();
      }
      return result;
    };
  }
  return hooks;
}
