/**
 * Wraps application functions as grpc-js handlers. One place for what every
 * RPC needs: rejected request bytes, deadlines and cancellation (as an
 * AbortSignal), error-to-status mapping, flow control on server streams, and
 * one pino log line per RPC.
 */
import { Metadata, status, type handleServerStreamingCall, type handleUnaryCall, type ServerUnaryCall, type ServerWritableStream } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { CommandTrace } from "../app/command-hooks.js";
import { CommandCancelledError } from "../app/errors.js";
import type { RpcObservation, RpcObserver } from "../observability/rpc-observer.js";
import { rejectionOf } from "./request-guard.js";
import { mapError, toServiceError, type MappedStatus } from "./status-mapping.js";

export interface CallContext {
  /** Aborted at the call's deadline or when the client cancels. */
  signal: AbortSignal;
  metadata: Metadata;
  correlationId: string | undefined;
  principal: string | undefined;
  /** Extra fields for this call's log line. */
  log: Record<string, unknown>;
  /** The call's server span, when tracing is on. */
  trace?: CommandTrace;
}

/** A server-stream source the wrapper pulls from; `close` releases it. */
export interface MessageSource<T> extends AsyncIterable<T> {
  close(): Promise<void>;
}

export interface RpcRuntime {
  logger: Logger;
  /**
   * Authentication for every AccountService call: returns the principal, or
   * throws an RpcError (UNAUTHENTICATED / PERMISSION_DENIED). Absent: open.
   */
  authenticate?: (rpc: string, metadata: Metadata) => string;
  /** Open server streams, ended by a graceful shutdown. */
  streams: Set<{ end(reason: MappedStatus): void }>;
  /** Metrics and tracing of every call (observability/rpc-observer.ts). */
  observer?: RpcObserver;
}

export function unary<Req, Res>(
  runtime: RpcRuntime,
  rpc: string,
  handle: (request: Req, context: CallContext) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const started = performance.now();
    const { context, dispose, denied, observation } = callContext(runtime, rpc, "unary", call);
    const respond = (error: unknown, response?: Res) => {
      dispose();
      const mapped = error === undefined ? undefined : mapError(error);
      observation?.end(mapped?.code ?? status.OK);
      logCall(runtime.logger, rpc, call.request, context, started, mapped, error);
      if (mapped) callback(toServiceError(mapped));
      else callback(null, response);
    };
    if (denied) return respond(denied);
    const rejected = rejectionOf(call.request);
    if (rejected) return respond(rejected);
    handle(call.request, context).then(
      (response) => respond(undefined, response),
      (error: unknown) => respond(error),
    );
  };
}

export function serverStream<Req, Res>(
  runtime: RpcRuntime,
  rpc: string,
  open: (request: Req, context: CallContext) => MessageSource<Res>,
): handleServerStreamingCall<Req, Res> {
  return (call) => {
    const started = performance.now();
    const { context, dispose, denied, observation } = callContext(runtime, rpc, "server_stream", call);
    let source: MessageSource<Res> | undefined;
    let endedBy: MappedStatus | undefined;
    const handle = {
      end(reason: MappedStatus) {
        endedBy = reason;
        void source?.close();
      },
    };
    runtime.streams.add(handle);

    const finish = (error: unknown) => {
      runtime.streams.delete(handle);
      dispose();
      const mapped = endedBy ?? (error === undefined ? undefined : mapError(error));
      const cancelled = call.cancelled;
      observation?.end(cancelled ? status.CANCELLED : (mapped?.code ?? status.OK));
      logCall(runtime.logger, rpc, call.request, context, started, cancelled ? cancelledStatus : mapped, error);
      if (cancelled) return;
      if (mapped) call.emit("error", toServiceError(mapped));
      else call.end();
    };

    const pump = async () => {
      if (denied) throw denied;
      const rejected = rejectionOf(call.request);
      if (rejected) throw rejected;
      source = open(call.request, context);
      const stop = () => void source?.close();
      context.signal.addEventListener("abort", stop, { once: true });
      for await (const message of source) {
        if (call.cancelled || endedBy) break;
        observation?.sent();
        // Flow control: when the client reads slowly, wait instead of buffering.
        if (!call.write(message)) await drainOrCancel(call, context.signal);
      }
    };
    pump().then(
      () => finish(undefined),
      (error: unknown) => {
        void source?.close();
        finish(error);
      },
    );
  };
}

const cancelledStatus: MappedStatus = { code: status.CANCELLED, reason: "CANCELLED", message: "cancelled by the client", metadata: {} };

/** Until the stream drains or the call is cancelled (the loop notices which). Plain listeners: this runs every few messages. */
function drainOrCancel(call: ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    call.on("drain", done);
    signal.addEventListener("abort", done);
  });
}

function callContext(
  runtime: RpcRuntime,
  rpc: string,
  type: "unary" | "server_stream",
  call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>,
): { context: CallContext; dispose: () => void; denied: unknown; observation: RpcObservation | undefined } {
  const observation = runtime.observer?.start(rpc, type, call.metadata);
  const controller = new AbortController();
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  const budgetMs = deadlineMs - Date.now(); // Infinity without a deadline
  let timer: NodeJS.Timeout | undefined;
  if (Number.isFinite(budgetMs)) {
    const abortAtDeadline = () => controller.abort(new CommandCancelledError("deadline"));
    if (budgetMs <= 0) abortAtDeadline();
    else timer = setTimeout(abortAtDeadline, budgetMs);
  }
  // grpc-js also reports an expired deadline as "cancelled" (the client resets the stream at its
  // deadline, which is a little earlier than ours: ours counts from when we read the request).
  // So a cancel close to our deadline is taken for the deadline: within a fifth of the call's
  // budget, between 5 and 100 ms. Without a deadline it is always a cancel.
  const deadlineFromMs = deadlineMs - Math.min(100, Math.max(5, budgetMs / 5));
  const onCancelled = () => controller.abort(new CommandCancelledError(Date.now() >= deadlineFromMs ? "deadline" : "cancelled"));
  call.on("cancelled", onCancelled);
  const metadata = call.metadata;
  const correlation = metadata.get("x-correlation-id")[0];
  let principal: string | undefined;
  let denied: unknown;
  try {
    principal = runtime.authenticate?.(rpc, metadata);
  } catch (error) {
    denied = error;
  }
  const context: CallContext = {
    signal: controller.signal,
    metadata,
    correlationId: typeof correlation === "string" && correlation.length > 0 ? correlation.slice(0, 128) : undefined,
    principal,
    log: {},
    ...(observation?.trace ? { trace: observation.trace } : {}),
  };
  return {
    context,
    denied,
    observation,
    dispose: () => {
      clearTimeout(timer);
      call.off("cancelled", onCancelled);
    },
  };
}

function logCall(
  logger: Logger,
  rpc: string,
  request: unknown,
  context: CallContext,
  started: number,
  mapped: MappedStatus | undefined,
  error: unknown,
): void {
  const fields: Record<string, unknown> = {
    rpc,
    code: mapped ? status[mapped.code] : "OK",
    ms: Math.round((performance.now() - started) * 100) / 100,
    ...requestFields(request),
    ...context.log,
  };
  if (context.correlationId) fields.correlationId = context.correlationId;
  if (context.principal) fields.principal = context.principal;
  if (context.trace) fields.traceId = context.trace.traceId;
  if (mapped) fields.reason = mapped.reason;
  if (mapped?.code === status.INTERNAL) logger.error({ ...fields, err: error }, "rpc failed");
  else logger.info(fields, "rpc");
}

function requestFields(request: unknown): Record<string, unknown> {
  if (typeof request !== "object" || request === null || rejectionOf(request)) return {};
  const fields: Record<string, unknown> = {};
  const { accountId, commandId } = request as { accountId?: unknown; commandId?: unknown };
  if (typeof accountId === "string" && accountId !== "") fields.accountId = accountId.slice(0, 64);
  if (typeof commandId === "string" && commandId !== "") fields.commandId = commandId.slice(0, 128);
  return fields;
}
