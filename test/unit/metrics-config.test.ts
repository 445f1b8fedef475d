/** The observability settings: EVENTBANK_METRICS_* and the standard OTEL_* variables, validated at start-up. */
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../server/src/config.js";

describe("observability configuration", () => {
  it("serves metrics on 127.0.0.1:9464 and traces nothing by default", () => {
    expect(loadConfig({})).toMatchObject({ metricsHost: "127.0.0.1", metricsPort: 9464, tracing: undefined });
    expect(loadConfig({ EVENTBANK_METRICS_PORT: "0" }).metricsPort).toBe(0);
  });

  it("turns tracing on with an OTLP endpoint, as the OTLP exporter specification builds the traces URL", () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }).tracing).toEqual({
      exporter: "otlp",
      protocol: "http/protobuf",
      endpoint: "http://collector:4318/v1/traces",
      serviceName: "eventbank",
      sampler: "parentbased_always_on",
      samplerRatio: 1,
    });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/custom" }).tracing?.endpoint).toBe("http://collector:4318/custom");
    expect(loadConfig({ OTEL_TRACES_EXPORTER: "otlp" }).tracing?.endpoint).toBe("http://localhost:4318/v1/traces");
    expect(
      loadConfig({ OTEL_TRACES_EXPORTER: "console", OTEL_SERVICE_NAME: "bank-eu", OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.25" }).tracing,
    ).toMatchObject({ exporter: "console", serviceName: "bank-eu", sampler: "traceidratio", samplerRatio: 0.25 });
  });

  it("keeps tracing off when told so", () => {
    expect(loadConfig({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }).tracing).toBeUndefined();
  });

  it.each([
    [{ EVENTBANK_METRICS_PORT: "70000" }, /EVENTBANK_METRICS_PORT/],
    [{ OTEL_TRACES_EXPORTER: "jaeger" }, /OTEL_TRACES_EXPORTER/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4317", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }, /OTEL_EXPORTER_OTLP_PROTOCOL.*grpc is not supported/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }, /OTEL_EXPORTER_OTLP_ENDPOINT/],
    [{ OTEL_TRACES_EXPORTER: "otlp", OTEL_TRACES_SAMPLER: "sometimes" }, /OTEL_TRACES_SAMPLER/],
    [{ OTEL_TRACES_EXPORTER: "otlp", OTEL_TRACES_SAMPLER_ARG: "1.5" }, /OTEL_TRACES_SAMPLER_ARG/],
  ])("refuses %j, naming the variable", (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
