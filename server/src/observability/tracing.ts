/**
 * OpenTelemetry tracing from the standard OTEL_* variables (parsed in
 * config.ts). The provider is this server's own and is not registered
 * globally: spans are parented explicitly (rpc-observer.ts), so several
 * servers in one process (tests) keep apart.
 */
import type { Tracer } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter as OtlpHttpJsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as OtlpHttpProtobufExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import type { TracingConfig } from "../config.js";

export interface Tracing {
  tracer: Tracer;
  propagator: W3CTraceContextPropagator;
  /** Exports what is buffered, then stops. */
  shutdown(): Promise<void>;
}

export function startTracing(config: TracingConfig): Tracing {
  const resource = defaultResource()
    .merge(detectResources({ detectors: [envDetector] }))
    .merge(resourceFromAttributes({ "service.name": config.serviceName }));
  const provider = new NodeTracerProvider({
    resource,
    sampler: sampler(config.sampler, config.samplerRatio),
    spanProcessors: [new BatchSpanProcessor(exporter(config))],
  });
  return {
    tracer: provider.getTracer("eventbank"),
    propagator: new W3CTraceContextPropagator(),
    shutdown: () => provider.shutdown(),
  };
}

function exporter(config: TracingConfig): SpanExporter {
  if (config.exporter === "console") return new ConsoleSpanExporter();
  // Headers, timeout and compression come from the OTEL_EXPORTER_OTLP_* variables, read by the exporter.
  return config.protocol === "http/json" ? new OtlpHttpJsonExporter({ url: config.endpoint }) : new OtlpHttpProtobufExporter({ url: config.endpoint });
}

function sampler(name: TracingConfig["sampler"], ratio: number): Sampler {
  switch (name) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}
