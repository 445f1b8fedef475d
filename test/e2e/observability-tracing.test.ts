/**
 * One trace from an SDK call, through the server's span for the RPC, to the
 * load, decide and append spans, sent over OTLP/HTTP to a receiver the test
 * runs; the same trace id is in the event's metadata and in the RPC's log line.
 */
import { context, trace, type Span } from "@opentelemetry/api";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccountClient } from "../../client/src/index.js";
import { startTestServer } from "../support/test-server.js";

/** OTLP/JSON, as the OpenTelemetry protocol's JSON mapping writes it (ids in hex, enums as numbers). */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: Array<{ key: string; value: { stringValue?: string; intValue?: string | number; boolValue?: boolean } }>;
}
interface OtlpRequest {
  resourceSpans: Array<{ resource?: { attributes?: OtlpSpan["attributes"] }; scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
}

const SPAN_KIND_SERVER = 2;

describe("tracing", () => {
  let receiver: Server;
  let endpoint: string;
  const requests: Array<{ path: string; headers: IncomingHttpHeaders; body: Buffer }> = [];
  // The caller's side: an application with OpenTelemetry set up (context manager and W3C propagator registered).
  const callerProvider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())] });

  beforeAll(async () => {
    callerProvider.register();
    receiver = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        requests.push({ path: request.url ?? "", headers: request.headers, body: Buffer.concat(chunks) });
        response.writeHead(200, { "content-type": request.headers["content-type"] ?? "application/json" }).end(
          request.headers["content-type"] === "application/json" ? "{}" : undefined,
        );
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await callerProvider.shutdown();
    trace.disable();
    context.disable();
    await new Promise((resolve) => receiver.close(resolve));
  });

  it("follows a deposit from the SDK call through the server's spans to the append, joined to the event and the log line", async () => {
    requests.length = 0;
    const server = await startTestServer({
      env: { OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_SERVICE_NAME: "eventbank-test" },
    });
    const client = createAccountClient({ address: server.address, retry: false });
    let caller!: Span;
    try {
      await client.openAccount({ accountId: "traced", owner: "T", currency: "EUR", commandId: "open-traced" });
      await callerProvider.getTracer("test").startActiveSpan("checkout", async (span) => {
        caller = span;
        await client.deposit({ accountId: "traced", amount: 42n, commandId: "dep-traced" });
        span.end();
      });
      const events = await server.eventbank.store.readStream("account-traced");
      const deposited = events.status === "ok" ? events.events.find((event) => event.type === "MoneyDeposited") : undefined;
      expect(deposited?.metadata.traceId).toBe(caller.spanContext().traceId);

      const logLine = server.logs.find((line) => line.rpc === "Deposit" && line.commandId === "dep-traced");
      expect(logLine?.traceId).toBe(caller.spanContext().traceId);
    } finally {
      client.close();
      await server.stop(); // exports what is buffered
    }

    expect(requests.length).toBeGreaterThan(0);
    expect(requests[0]!.path).toBe("/v1/traces");
    const payloads = requests.map((request) => JSON.parse(request.body.toString("utf8")) as OtlpRequest);
    const serviceNames = payloads.flatMap((payload) =>
      payload.resourceSpans.map((resource) => resource.resource?.attributes?.find((a) => a.key === "service.name")?.value.stringValue),
    );
    expect(serviceNames).toContain("eventbank-test");
    const spans = payloads.flatMap((payload) => payload.resourceSpans.flatMap((resource) => resource.scopeSpans.flatMap((scope) => scope.spans)));
    const { traceId, spanId: callerSpanId } = caller.spanContext();
    const inTrace = spans.filter((span) => span.traceId === traceId);

    const rpc = inTrace.find((span) => span.name === "bank.v1.AccountService/Deposit");
    expect(rpc).toBeDefined();
    expect(rpc!.parentSpanId).toBe(callerSpanId);
    expect(rpc!.kind).toBe(SPAN_KIND_SERVER);
    expect(attributes(rpc!)).toMatchObject({ "rpc.system": "grpc", "rpc.service": "bank.v1.AccountService", "rpc.method": "Deposit", "rpc.grpc.status_code": 0 });

    const children = inTrace.filter((span) => span.parentSpanId === rpc!.spanId);
    expect(children.map((span) => span.name).sort()).toEqual(["append", "decide", "load"]);
    const append = children.find((span) => span.name === "append")!;
    expect(attributes(append)).toMatchObject({
      "eventbank.stream": "account-traced",
      "eventbank.expected_revision": "0",
      "eventbank.batch_size": 1,
      "eventbank.attempt": 1,
    });
    // The open had no caller context: a trace of its own.
    const opens = spans.filter((span) => span.name === "bank.v1.AccountService/OpenAccount");
    expect(opens).toHaveLength(1);
    expect(opens[0]!.traceId).not.toBe(traceId);
  });

  it("exports OTLP/HTTP protobuf by default", async () => {
    requests.length = 0;
    const server = await startTestServer({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint } });
    const client = createAccountClient({ address: server.address, retry: false });
    let traceId = "";
    try {
      await callerProvider.getTracer("test").startActiveSpan("open", async (span) => {
        traceId = span.spanContext().traceId;
        await client.openAccount({ accountId: "traced-proto", owner: "T", currency: "EUR" });
        span.end();
      });
    } finally {
      client.close();
      await server.stop();
    }
    expect(requests.map((request) => request.headers["content-type"])).toContain("application/x-protobuf");
    // The binary request carries the trace id as 16 raw bytes.
    expect(Buffer.concat(requests.map((request) => request.body)).includes(Buffer.from(traceId, "hex"))).toBe(true);
  });

  it("is off when no OTEL_* variable is set: no trace id in the log line", async () => {
    const server = await startTestServer();
    const client = createAccountClient({ address: server.address, retry: false });
    try {
      await callerProvider.getTracer("test").startActiveSpan("open", async (span) => {
        await client.openAccount({ accountId: "untraced", owner: "T", currency: "EUR", commandId: "open-untraced" });
        span.end();
      });
    } finally {
      client.close();
      await server.stop();
    }
    const line = server.logs.find((entry) => entry.rpc === "OpenAccount");
    expect(line).toBeDefined();
    expect(line!.traceId).toBeUndefined();
  });
});

function attributes(span: OtlpSpan): Record<string, string | number | boolean | undefined> {
  return Object.fromEntries(
    (span.attributes ?? []).map(({ key, value }) => [key, value.stringValue ?? (value.intValue === undefined ? value.boolValue : Number(value.intValue))]),
  );
}
