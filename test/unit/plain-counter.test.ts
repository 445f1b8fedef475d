import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { plainCounter } from "../../server/src/observability/plain-counter.js";

describe("plainCounter", () => {
  it("exposes its children's counts at every scrape, from 0, as a prom-client counter", async () => {
    const registry = new Registry();
    const calls = plainCounter({ name: "calls_total", help: "Calls.", labelNames: ["method", "code"], registers: [registry] });
    const ok = calls.labels({ method: "Deposit", code: "OK" });
    calls.labels({ method: "Deposit", code: "NotFound" });
    expect(await registry.metrics()).toContain('calls_total{method="Deposit",code="NotFound"} 0');

    ok.inc();
    ok.inc(2);
    expect(await registry.metrics()).toContain('calls_total{method="Deposit",code="OK"} 3');
    // A scrape with nothing new changes nothing; later counts add up.
    expect(await registry.metrics()).toContain('calls_total{method="Deposit",code="OK"} 3');
    calls.labels({ method: "Deposit", code: "OK" }).inc();
    const text = await registry.metrics();
    expect(text).toContain('calls_total{method="Deposit",code="OK"} 4');
    expect(text).toContain("# TYPE calls_total counter");
  });
});
