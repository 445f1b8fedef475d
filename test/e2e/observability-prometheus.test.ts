/**
 * A real Prometheus (Debian's `prometheus` package) scrapes a running
 * eventbank; the test reads back, through Prometheus's HTTP query API, the
 * grpc_server_handled_total of calls it made, and `promtool check metrics`
 * lints the exposition. .ci/run installs the package and sets
 * EVENTBANK_REQUIRE_PROMETHEUS=1, so CI fails rather than skips; elsewhere,
 * without the binaries, the test is skipped with a note.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccountClient, type AccountClient } from "../../client/src/index.js";
import { freePort } from "../support/free-port.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const required = process.env.EVENTBANK_REQUIRE_PROMETHEUS === "1";
const available = spawnSync("prometheus", ["--version"]).status === 0 && spawnSync("promtool", ["--version"]).status === 0;
if (!available && !required) console.warn("[observability] prometheus/promtool not found (apt-get install prometheus); skipping the Prometheus scrape test");

describe.runIf(available || required)("metrics scraped by a real Prometheus", () => {
  let server: TestServer;
  let client: AccountClient;
  let prometheus: ChildProcess | undefined;
  let prometheusUrl: string;
  let dir: string;
  let metricsUrl: string;

  beforeAll(async () => {
    if (!available) expect.fail("EVENTBANK_REQUIRE_PROMETHEUS=1 but prometheus/promtool are not installed (apt-get install prometheus)");
    const metricsPort = await freePort();
    server = await startTestServer({ env: { EVENTBANK_METRICS_PORT: String(metricsPort) } });
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    client = createAccountClient({ address: server.address, retry: false });

    dir = mkdtempSync(join(tmpdir(), "eventbank-prometheus-"));
    const config = join(dir, "prometheus.yml");
    writeFileSync(
      config,
      [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "scrape_configs:",
        "  - job_name: eventbank",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${metricsPort}"]`,
        "",
      ].join("\n"),
    );
    const webPort = await freePort();
    prometheusUrl = `http://127.0.0.1:${webPort}`;
    prometheus = spawn(
      "prometheus",
      [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${webPort}`, "--log.level=warn"],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    prometheus.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    await eventually(async () => {
      if (prometheus!.exitCode !== null) throw new Error(`prometheus exited: ${stderr}`);
      const response = await fetch(`${prometheusUrl}/-/ready`);
      if (!response.ok) throw new Error(`not ready: ${response.status}`);
    }, 20_000);
  });

  afterAll(async () => {
    client?.close();
    if (prometheus && prometheus.exitCode === null) {
      prometheus.kill("SIGTERM");
      await once(prometheus, "exit");
    }
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("counts the calls it handled, by method and code, as Prometheus reads them", async () => {
    await client.openAccount({ accountId: "prom-alice", owner: "Alice", currency: "EUR" });
    await client.deposit({ accountId: "prom-alice", amount: 500n });
    await client.deposit({ accountId: "prom-alice", amount: 700n });
    await expect(client.deposit({ accountId: "prom-alice", amount: 0n })).rejects.toThrow();
    await expect(client.withdraw({ accountId: "prom-alice", amount: 5_000n })).rejects.toThrow();

    const handled = (method: string, code: string) =>
      `grpc_server_handled_total{job="eventbank",grpc_service="bank.v1.AccountService",grpc_method="${method}",grpc_type="unary",grpc_code="${code}"}`;
    await eventually(async () => {
      expect(await query(handled("Deposit", "OK"))).toBe(2);
      expect(await query(handled("Deposit", "InvalidArgument"))).toBe(1);
      expect(await query(handled("Withdraw", "FailedPrecondition"))).toBe(1);
      expect(await query(handled("OpenAccount", "OK"))).toBe(1);
    }, 20_000);
    // Series for methods not called yet exist at 0, so rate() and alerts work from the start.
    expect(await query(handled("CloseAccount", "OK"))).toBe(0);
  });

  it("exposes what promtool accepts, with command and store metrics and no account ids", async () => {
    // The transfer process writes its own checkpoint now and then: count those writes around the scrape.
    const processWrites = async () => {
      const checkpoints = await server.eventbank.store.readStream("transfer-$process-checkpoint");
      return checkpoints.status === "ok" ? checkpoints.events.length : 0;
    };
    const writesBefore = await processWrites();
    const exposition = await (await fetch(metricsUrl)).text();
    const writesAfter = await processWrites();
    const lint = spawnSync("promtool", ["check", "metrics"], { input: exposition, encoding: "utf8" });
    expect(lint.stdout + lint.stderr).toBe("");
    expect(lint.status).toBe(0);

    expect(sample(exposition, 'eventbank_commands_total{command="Deposit",outcome="accepted"}')).toBe(2);
    expect(sample(exposition, 'eventbank_commands_total{command="Deposit",outcome="INVALID_AMOUNT"}')).toBe(1);
    expect(sample(exposition, 'eventbank_commands_total{command="Withdraw",outcome="INSUFFICIENT_FUNDS"}')).toBe(1);
    // Open, two deposits and the recorded refusal, plus the transfer process's own checkpoint writes.
    for (const name of ["eventbank_store_events_appended_total", 'eventbank_store_append_seconds_count{outcome="ok"}']) {
      const processAppends = sample(exposition, name)! - 4;
      expect(processAppends, name).toBeGreaterThanOrEqual(writesBefore);
      expect(processAppends, name).toBeLessThanOrEqual(writesAfter);
    }
    expect(sample(exposition, "eventbank_store_appended_bytes_total")).toBeGreaterThan(0);
    expect(sample(exposition, "eventbank_store_group_commit_appends_count")).toBeGreaterThanOrEqual(1);
    expect(sample(exposition, 'grpc_server_handling_seconds_count{grpc_type="unary",grpc_service="bank.v1.AccountService",grpc_method="Deposit"}')).toBe(3);
    expect(sample(exposition, "nodejs_eventloop_lag_seconds")).toBeGreaterThanOrEqual(0);
    expect(exposition).not.toContain("prom-alice");
  });

  it("counts transfers by the state they reach", async () => {
    await client.openAccount({ accountId: "prom-bob", owner: "Bob", currency: "EUR" });
    const completed = await client.transfer({ fromAccountId: "prom-alice", toAccountId: "prom-bob", amount: 100n });
    expect(completed.status).toBe("completed");
    // Refused for its source's balance: requested, then failed (the caller gets the refusal).
    const transferId = "prom-refused";
    await expect(client.transfer({ transferId, fromAccountId: "prom-bob", toAccountId: "prom-alice", amount: 1_000_000n })).rejects.toThrow(/cannot reserve/);
    expect((await client.getTransfer(transferId)).status).toBe("failed");

    const transfers = (state: string) => `eventbank_transfers_total{job="eventbank",state="${state}"}`;
    await eventually(async () => {
      expect(await query(transfers("requested"))).toBe(2);
      expect(await query(transfers("completed"))).toBe(1);
      expect(await query(transfers("failed"))).toBe(1);
    }, 20_000);
  });

  async function query(promql: string): Promise<number | undefined> {
    const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await response.json()) as { status: string; data: { result: Array<{ value: [number, string] }> } };
    expect(body.status).toBe("success");
    const [first] = body.data.result;
    return first === undefined ? undefined : Number(first.value[1]);
  }
});

/** The value of one sample line of the text exposition (exact name and labels as written). */
function sample(exposition: string, series: string): number | undefined {
  const line = exposition.split("\n").find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function eventually(check: () => Promise<void>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}
