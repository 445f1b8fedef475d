/**
 * What grpcurl and other generic clients rely on (health, reflection), and
 * what hostile bytes get: a status with a reason, never a crash.
 */
import { credentials, makeGenericClientConstructor, Metadata, status, type Client, type ServiceError } from "@grpc/grpc-js";
import { connect as tcpConnect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { askReflection, checkHealth } from "../support/generic-clients.js";
import { call, connect, decodeError } from "../support/grpc-client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";


describe("protocol surface", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("answers grpc.health.v1 checks for the server and AccountService", async () => {
    expect(await checkHealth(server.address, "")).toBe("SERVING");
    expect(await checkHealth(server.address, "bank.v1.AccountService")).toBe("SERVING");
  });

  for (const version of ["v1", "v1alpha"] as const) {
    it(`lists and describes services through reflection ${version}`, async () => {
      const ask = (request: object) => askReflection(server.address, version, request);
      const listed = await ask({ listServices: "*" });
      const names = listed.listServicesResponse.service.map((s: { name: string }) => s.name);
      expect(names).toEqual(expect.arrayContaining(["bank.v1.AccountService", "grpc.health.v1.Health"]));
      const described = await ask({ fileContainingSymbol: "bank.v1.AccountService" });
      expect(described.fileDescriptorResponse.fileDescriptorProto.length).toBeGreaterThan(0);
      const errorInfo = await ask({ fileContainingSymbol: "google.rpc.ErrorInfo" });
      expect(errorInfo.fileDescriptorResponse.fileDescriptorProto.length).toBeGreaterThan(0);
    });
  }

  /** Sends raw bytes as the request body of an RPC. */
  const rawCall = (method: string, body: Buffer) => {
    const RawClient = makeGenericClientConstructor(
      {
        [method]: {
          path: `/bank.v1.AccountService/${method}`,
          requestStream: false,
          responseStream: false,
          requestSerialize: (value: Buffer) => value,
          requestDeserialize: (value: Buffer) => value,
          responseSerialize: (value: Buffer) => value,
          responseDeserialize: (value: Buffer) => value,
        },
      },
      "Raw",
    );
    const client = new RawClient(server.address, credentials.createInsecure()) as Client & Record<string, Function>;
    return new Promise<ServiceError>((resolve, reject) => {
      client[method]!(body, new Metadata(), (error: ServiceError | null) => {
        client.close();
        if (error) resolve(error);
        else reject(new Error("raw call unexpectedly succeeded"));
      });
    });
  };

  it("answers malformed protobuf bytes with INVALID_ARGUMENT / MALFORMED_REQUEST", async () => {
    const error = await rawCall("Deposit", Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]));
    expect(decodeError(error)).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "MALFORMED_REQUEST" });
  });

  it("answers invalid UTF-8 in a string field with INVALID_ARGUMENT and writes nothing", async () => {
    // field 1 (account_id), length 2, bytes C3 28: not UTF-8.
    const error = await rawCall("OpenAccount", Buffer.from([0x0a, 0x02, 0xc3, 0x28, 0x12, 0x01, 0x41, 0x1a, 0x03, 0x45, 0x55, 0x52, 0x22, 0x01, 0x63]));
    expect(decodeError(error)).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "MALFORMED_REQUEST" });
  });

  it("keeps serving after garbage bytes on its port", async () => {
    for (const garbage of [Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Buffer.alloc(4096, 0xab), Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x08\x00\x00\x00\x00\x00garbage")]) {
      await new Promise<void>((resolve) => {
        const [host, port] = server.address.split(":");
        const socket = tcpConnect(Number(port), host!, () => socket.end(garbage));
        socket.on("error", () => resolve());
        socket.on("close", () => resolve());
        socket.resume();
      });
    }
    const client = connect(server.address);
    const opened = await call(client, client.openAccount, { accountId: "after-garbage", owner: "Ada", currency: "EUR", commandId: "c" });
    expect(opened.revision).toBe(0n);
    client.close();
  });
});
