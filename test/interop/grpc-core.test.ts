/**
 * The server called by another gRPC implementation: Python's grpcio, on
 * gRPC C-core (test/interop/grpc_core_client.py). Every other test uses
 * grpc-js on both ends, so this one would catch what only a different
 * HTTP/2 + gRPC stack notices: framing, trailers, the binary status details
 * grpcurl decodes, cancelling a stream, and reflection as grpcurl asks for
 * it: the client takes every type it uses from reflection, into Python's
 * DescriptorPool, which refuses a file whose imports it was not given.
 *
 * Needs Debian's python3-grpcio (`apt-get install python3-grpcio`); .ci/run
 * installs it and sets EVENTBANK_REQUIRE_INTEROP=1 so that CI fails rather
 * than skips. Elsewhere, without the package, the test is skipped with a note.
 */
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { execFile, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
// Debian's interpreter, where apt puts python3-grpcio (a python3 earlier on PATH may be another one).
const PYTHON = process.env.EVENTBANK_INTEROP_PYTHON ?? "/usr/bin/python3";
const required = process.env.EVENTBANK_REQUIRE_INTEROP === "1";
const probe = spawnSync(PYTHON, ["-c", "import grpc, google.protobuf"], { encoding: "utf8" });
const available = probe.status === 0;
if (!available && !required) {
  console.warn(`[interop] ${PYTHON} cannot import grpc (apt-get install python3-grpcio); skipping the C-core client test`);
}

interface Refusal {
  code: string;
  message: string;
  reason: string | null;
  metadata: Record<string, string>;
}

interface Report {
  health: string;
  balance: string;
  revision: string;
  overdraw: Refusal | "accepted";
  over_bound: Refusal | "accepted";
  missing: Refusal | "found";
  subscription: string[];
  reflection: Record<"v1" | "v1alpha", { services: string[]; file: string; files: string[]; methods: string[] } | { error: string }>;
}

describe("a gRPC C-core client (Python grpcio)", () => {
  if (required && !available) {
    it("is available where CI requires it", () => {
      expect.fail(`EVENTBANK_REQUIRE_INTEROP=1 but ${PYTHON} cannot import grpc: ${probe.stderr || probe.error}`);
    });
  }

  describe.runIf(available)("against the real server", () => {
    let server: TestServer;
    let report: Report;

    beforeAll(async () => {
      server = await startTestServer();
      const { stdout } = await run(
        PYTHON,
        ["test/interop/grpc_core_client.py", server.address],
        { cwd: ROOT, timeout: 30_000 },
      );
      report = JSON.parse(stdout) as Report;
    });
    afterAll(async () => {
      await server?.stop();
    });

    it("gets SERVING from grpc.health.v1", () => {
      expect(report.health).toBe("SERVING");
    });

    it("opens, deposits the largest allowed amount and withdraws, with int64 balances exact", () => {
      expect(report.balance).toBe("999999999998");
      expect(report.revision).toBe("2");
    });

    it("reads the status code and the google.rpc.ErrorInfo reason from the trailers", () => {
      expect(report.overdraw).toEqual({
        code: "FAILED_PRECONDITION",
        message: expect.stringContaining("cannot withdraw"),
        reason: "INSUFFICIENT_FUNDS",
        metadata: expect.objectContaining({ balance: "999999999998", amount: "1000000000000" }),
      });
      expect(report.over_bound).toMatchObject({ code: "INVALID_ARGUMENT", reason: "INVALID_AMOUNT", metadata: { field: "amount" } });
      expect(report.missing).toMatchObject({ code: "NOT_FOUND", reason: "ACCOUNT_NOT_FOUND" });
    });

    it("streams history, the caught-up marker and a live event, and the server sees the cancel", async () => {
      const caughtUp = report.subscription.indexOf("caught_up");
      const history = report.subscription.slice(0, caughtUp);
      // The refused overdraw may be recorded in the stream (revision 3); the rest holds either way.
      expect(history.slice(0, 3)).toEqual(["0:opened", "1:deposited", "2:withdrawn"]);
      expect(history.length).toBeLessThanOrEqual(4);
      expect(report.subscription.slice(caughtUp)).toEqual(["caught_up", `${history.length}:deposited`]);
      // The server logs one line per RPC when it ends; the client's cancel ends the stream.
      await expect
        .poll(() => server.logs.find((line) => line.rpc === "SubscribeAccount")?.code, { timeout: 5_000 })
        .toBe("CANCELLED");
    });

    it("loads what reflection v1 and v1alpha answer into a strict DescriptorPool and resolves every method's types", () => {
      // The compiled contract, to compare with what the Python side resolved from reflection alone.
      const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(`${ROOT}/server/gen/descriptor-set.binpb`)));
      const services = ["bank.v1.AccountService", "bank.v1.TransferService", "grpc.health.v1.Health"];
      const methods = services.flatMap((name) =>
        registry.getService(name)!.methods.map((m) => `${name}/${m.name}: ${m.input.typeName} -> ${m.output.typeName}`),
      );
      for (const version of ["v1", "v1alpha"] as const) {
        expect(report.reflection[version], version).toEqual({
          services,
          file: "bank/v1/account_service.proto",
          files: [
            "bank/v1/account.proto",
            "bank/v1/account_service.proto",
            "bank/v1/transfer.proto",
            "bank/v1/transfer_service.proto",
            "google/protobuf/any.proto",
            "google/protobuf/duration.proto",
            "google/protobuf/timestamp.proto",
            "google/rpc/error_details.proto",
            "google/rpc/status.proto",
            "health/v1/health.proto",
          ],
          methods,
        });
      }
    });
  });
});
