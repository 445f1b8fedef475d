/**
 * What every RPC reports, applied where rpc-handlers.ts wraps the handlers:
 * go-grpc-prometheus's counters and histogram, and (when tracing is on) a
 * server span continuing the caller's W3C traceparent.
 */
import { status, type Metadata } from "@grpc/grpc-js";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span, type TextMapGetter } from "@opentelemetry/api";
import type { CommandTrace } from "../app/command-hooks.js";
import { GRPC_CODE_NAMES, type GrpcType, type Metrics } from "./metrics.js";
import type { CounterChild } from "./plain-counter.js";
import type { Tracing } from "./tracing.js";

export interface RpcObserver {
  /** A call was received (its one request message included). */
  start(rpc: string, type: "unary" | "server_stream", metadata: Metadata): RpcObservation;
}

export interface RpcObservation {
  /** The call's server span, when tracing is on: for child spans, event metadata and the log line. */
  readonly trace: CommandTrace | undefined;
  /** One stream message sent. */
  sent(): void;
  /** The call ended with this status. */
  end(code: status): void;
}

interface MethodSeries {
  started: CounterChild;
  received: CounterChild;
  sent: CounterChild;
  seconds: { observe(value: number): void };
  handled: CounterChild[];
}

const metadataGetter: TextMapGetter<Metadata> = {
  get: (metadata, key) => {
    const values = metadata.get(key).filter((value): value is string => typeof value === "string");
    return values.length === 0 ? undefined : values.length === 1 ? values[0] : values;
  },
  keys: (metadata) => Object.keys(metadata.getMap()),
};

/** Server span statuses that are errors, per the OpenTelemetry gRPC conventions (the rest are the client's doing). */
const SERVER_ERROR_CODES = new Set([status.UNKNOWN, status.DEADLINE_EXCEEDED, status.UNIMPLEMENTED, status.INTERNAL, status.UNAVAILABLE, status.DATA_LOSS]);

export function createRpcObserver(service: string, metrics: Metrics | undefined, tracing: Tracing | undefined): RpcObserver {
  // Label children resolved once per method, so a call costs no label hashing.
  const series = new Map<string, MethodSeries>();
  const seriesOf = (metrics: Metrics, rpc: string, type: GrpcType): MethodSeries => {
    let found = series.get(rpc);
    if (!found) {
      const labels = { grpc_type: type, grpc_service: service, grpc_method: rpc };
      found = {
        started: metrics.grpc.started.labels(labels),
        received: metrics.grpc.msgReceived.labels(labels),
        sent: metrics.grpc.msgSent.labels(labels),
        seconds: metrics.grpc.handlingSeconds.labels(labels),
        handled: GRPC_CODE_NAMES.map((code) => metrics.grpc.handled.labels({ ...labels, grpc_code: code })),
      };
      series.set(rpc, found);
    }
    return found;
  };

  return {
    start(rpc, type, metadata) {
      let span: Span | undefined;
      if (tracing) {
        const parent = tracing.propagator.extract(ROOT_CONTEXT, metadata, metadataGetter);
        span = tracing.tracer.startSpan(
          `${service}/${rpc}`,
          { kind: SpanKind.SERVER, attributes: { "rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc } },
          parent,
        );
      }
      return new Observation(type, metrics && seriesOf(metrics, rpc, type), span);
    },
  };
}

/** One call (a class, not closures: one allocation per call on the hot path). */
class Observation implements RpcObservation {
  readonly trace: CommandTrace | undefined;
  private readonly started = performance.now();

  constructor(
    private readonly type: "unary" | "server_stream",
    private readonly series: MethodSeries | undefined,
    private readonly span: Span | undefined,
  ) {
    series?.started.inc();
    series?.received.inc();
    const spanContext = span?.spanContext();
    this.trace = spanContext && { traceId: spanContext.traceId, spanId: spanContext.spanId, traceFlags: spanContext.traceFlags };
  }

  sent(): void {
    this.series?.sent.inc();
  }

  end(code: status): void {
    const { series, span } = this;
    if (series) {
      if (this.type === "unary" && code === status.OK) series.sent.inc();
      series.handled[code]?.inc();
      series.seconds.observe((performance.now() - this.started) / 1000);
    }
    if (span) {
      span.setAttribute("rpc.grpc.status_code", code);
      if (SERVER_ERROR_CODES.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: GRPC_CODE_NAMES[code] ?? String(code) });
      span.end();
    }
  }
}

/** The parent context for spans of work done for a call (see command-observer.ts). */
export function contextOf(commandTrace: CommandTrace) {
  return trace.setSpanContext(ROOT_CONTEXT, { ...commandTrace, isRemote: false });
}
