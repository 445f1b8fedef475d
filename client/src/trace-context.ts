/**
 * W3C trace context for outgoing calls: when the application uses
 * OpenTelemetry and a span is active, its `traceparent` (and `tracestate`,
 * through the propagator the application registered) goes with the call, so
 * the server's spans join the caller's trace. Without OpenTelemetry set up,
 * @opentelemetry/api is a no-op and nothing is added.
 */
import type { Metadata } from "@grpc/grpc-js";
import { context, propagation, type TextMapSetter } from "@opentelemetry/api";

const metadataSetter: TextMapSetter<Metadata> = {
  set: (metadata, key, value) => metadata.set(key, value),
};

export function injectTraceContext(metadata: Metadata): void {
  propagation.inject(context.active(), metadata, metadataSetter);
}
