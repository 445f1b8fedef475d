import { describe, expect, it } from "vitest";
import { reportingFaults, StoreHealthMonitor } from "../../server/src/app/store-health.js";
import { StoreBusyError, StoreFullError, StoreUnavailableError } from "../../server/src/store/event-store.js";

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A probe the test answers by hand. */
function manualProbe() {
  const pending: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  return {
    probe: () => new Promise<void>((resolve, reject) => pending.push({ resolve, reject })),
    calls: () => pending.length,
    succeed: () => pending.shift()!.resolve(),
    fail: (error: unknown) => pending.shift()!.reject(error),
  };
}

describe("StoreHealthMonitor", () => {
  it("turns NOT_SERVING on a store fault, probes until the store works, then SERVING", async () => {
    const probe = manualProbe();
    const changes: boolean[] = [];
    const monitor = new StoreHealthMonitor({ probe: probe.probe, intervalMs: 5, onChange: (serving) => changes.push(serving) });
    monitor.reportFault(new StoreFullError("disk full"));
    expect(changes).toEqual([false]);
    await tick(20);
    probe.fail(new StoreFullError("still full"));
    await tick(20);
    expect(monitor.isServing).toBe(false);
    probe.succeed();
    await tick(1);
    expect(changes).toEqual([false, true]);
    await tick(20);
    expect(probe.calls(), "no probing while the store serves").toBe(0);
    monitor.close();
  });

  it("ignores errors that are not store faults", () => {
    const changes: boolean[] = [];
    const monitor = new StoreHealthMonitor({ probe: async () => {}, intervalMs: 5, onChange: (serving) => changes.push(serving) });
    monitor.reportFault(new Error("a bug"));
    expect(changes).toEqual([]);
    monitor.close();
  });

  it("does not call the store healthy on a probe that started before a newer fault", async () => {
    const probe = manualProbe();
    const changes: boolean[] = [];
    const monitor = new StoreHealthMonitor({ probe: probe.probe, intervalMs: 5, onChange: (serving) => changes.push(serving) });
    monitor.reportFault(new StoreBusyError("locked"));
    await tick(20);
    expect(probe.calls()).toBe(1);
    monitor.reportFault(new StoreBusyError("locked again"));
    probe.succeed();
    await tick(1);
    expect(monitor.isServing).toBe(false);
    await tick(20);
    probe.succeed();
    await tick(1);
    expect(changes).toEqual([false, true]);
    monitor.close();
  });

  it("probes while serving when asked (a remote store), so an outage shows without calls", async () => {
    const probe = manualProbe();
    const changes: boolean[] = [];
    const monitor = new StoreHealthMonitor({ probe: probe.probe, intervalMs: 5, probeWhileServing: true, onChange: (serving) => changes.push(serving) });
    monitor.start();
    probe.succeed();
    await tick(20);
    probe.fail(new StoreUnavailableError("gone"));
    await tick(20);
    probe.succeed();
    await tick(1);
    expect(changes).toEqual([false, true]);
    monitor.close();
  });
});

describe("reportingFaults", () => {
  it("reports store faults thrown or rejected by any method and passes everything else through unchanged", async () => {
    const reported: unknown[] = [];
    const target = {
      value: 42,
      ok: async () => "fine",
      fails: async () => {
        throw new StoreFullError("full");
      },
      throwsNow: () => {
        throw new StoreBusyError("busy");
      },
      bug: async () => {
        throw new TypeError("bug");
      },
    };
    const watched = reportingFaults(target, (fault) => reported.push(fault));
    expect(watched.value).toBe(42);
    expect(await watched.ok()).toBe("fine");
    await expect(watched.fails()).rejects.toBeInstanceOf(StoreFullError);
    expect(() => watched.throwsNow()).toThrow(StoreBusyError);
    await expect(watched.bug()).rejects.toBeInstanceOf(TypeError);
    expect(reported.map((error) => (error as Error).name)).toEqual(["StoreFullError", "StoreBusyError"]);
  });
});
