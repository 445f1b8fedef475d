/**
 * What grpcurl and other generic clients rely on (health, reflection), and
 * what hostile bytes get: a status with a reason, never a crash.
 */
import { credentials, makeGenericClientConstructor, Metadata, status, type Client, type ServiceError } from "@grpc/grpc-js";
import { connect as tcpConnect } from "node:net";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
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
    describe(`reflection ${version}`, () => {
      const ask = (request: object) => askReflection(server.address, version, request);
      const files = (answer: any) => (answer.fileDescriptorResponse.fileDescriptorProto as Buffer[]).map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
      const notFound = (answer: any) => expect(answer.errorResponse).toMatchObject({ errorCode: status.NOT_FOUND, errorMessage: expect.stringContaining("not found") });

      it("lists the services", async () => {
        const listed = await ask({ listServices: "*" });
        expect(listed.listServicesResponse.service.map((s: { name: string }) => s.name)).toEqual(["bank.v1.AccountService", "bank.v1.TransferService", "grpc.health.v1.Health"]);
      });

      it("answers a symbol with its file as compiled, imports included, enough to resolve every method", async () => {
        const answer = files(await ask({ fileContainingSymbol: "bank.v1.AccountService" }));
        expect(answer[0]).toMatchObject({ name: "bank/v1/account_service.proto", dependency: ["bank/v1/account.proto"] });
        expect(answer.map((f) => f.name)).toEqual(["bank/v1/account_service.proto", "bank/v1/account.proto", "google/protobuf/timestamp.proto"]);
        // createFileRegistry refuses a file whose imports are missing, like grpcurl and DescriptorPool.
        const registry = createFileRegistry(answer[0]!, (name) => answer.find((f) => f.name === name));
        const service = registry.getService("bank.v1.AccountService")!;
        expect(service.methods.map((m) => [m.name, m.input.typeName, m.output.typeName])).toContainEqual(["SubscribeAll", "bank.v1.SubscribeAllRequest", "bank.v1.SubscribeAllResponse"]);
        expect(registry.getMessage("bank.v1.AccountEvent")!.field.occurredAt!.message!.typeName).toBe("google.protobuf.Timestamp");
      });

      it("answers every file by name, transitively, as grpcurl walks the imports", async () => {
        const seen = new Map<string, string[]>();
        const pending = ["bank/v1/account_service.proto", "google/rpc/status.proto", "google/rpc/error_details.proto", "health/v1/health.proto"];
        while (pending.length > 0) {
          const name = pending.pop()!;
          const [file] = files(await ask({ fileByFilename: name }));
          expect(file!.name).toBe(name);
          seen.set(name, file!.dependency);
          pending.push(...file!.dependency.filter((d) => !seen.has(d) && !pending.includes(d)));
        }
        expect(Object.fromEntries(seen)).toEqual({
          "bank/v1/account_service.proto": ["bank/v1/account.proto"],
          "bank/v1/account.proto": ["google/protobuf/timestamp.proto"],
          "google/protobuf/timestamp.proto": [],
          "google/rpc/status.proto": ["google/protobuf/any.proto"],
          "google/protobuf/any.proto": [],
          "google/rpc/error_details.proto": ["google/protobuf/duration.proto"],
          "google/protobuf/duration.proto": [],
          "health/v1/health.proto": [],
        });
      });

      it("finds methods, fields, enum values and the status detail types by symbol", async () => {
        for (const [symbol, file] of [
          ["bank.v1.AccountService.Deposit", "bank/v1/account_service.proto"],
          ["bank.v1.Account.balance", "bank/v1/account.proto"],
          ["bank.v1.READ_DIRECTION_BACKWARDS", "bank/v1/account_service.proto"],
          ["google.rpc.ErrorInfo", "google/rpc/error_details.proto"],
          ["grpc.health.v1.Health", "health/v1/health.proto"],
        ]) {
          expect(files(await ask({ fileContainingSymbol: symbol }))[0]!.name, symbol).toBe(file);
        }
      });

      it("answers NOT_FOUND for unknown files, symbols and extensions, and no extension numbers for a known message", async () => {
        notFound(await ask({ fileByFilename: "bank/v1/nope.proto" }));
        notFound(await ask({ fileContainingSymbol: "bank.v1.Nope" }));
        notFound(await ask({ fileContainingExtension: { containingType: "bank.v1.Account", extensionNumber: 100 } }));
        notFound(await ask({ allExtensionNumbersOfType: "bank.v1.Nope" }));
        const numbers = (await ask({ allExtensionNumbersOfType: "bank.v1.Account" })).allExtensionNumbersResponse;
        expect(numbers.baseTypeName).toBe("bank.v1.Account");
        expect(numbers.extensionNumber ?? []).toEqual([]);
      });
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
