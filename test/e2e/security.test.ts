/** Who may call: TLS and mutual TLS, API keys with scopes, and the limits that protect the server. */
import { credentials, Metadata, status } from "@grpc/grpc-js";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountServiceClient, type SubscribeAccountResponse } from "../../client/src/gen/bank/v1/account_service.js";
import { hashToken } from "../../server/src/grpc/auth.js";
import { askReflection, checkHealth } from "../support/generic-clients.js";
import { call, connect, decodeError, rejection } from "../support/grpc-client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { readMessages } from "./account-service-suite.js";


describe("TLS", () => {
  let dir: string;
  let pki: ReturnType<typeof makePki>;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "eventbank-tls-"));
    pki = makePki(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("serves TLS with the configured certificate and refuses plaintext clients", async () => {
    const server = await startTestServer({ env: { EVENTBANK_TLS_CERT_FILE: pki.serverCert, EVENTBANK_TLS_KEY_FILE: pki.serverKey } });
    try {
      const secure = new AccountServiceClient(server.address, credentials.createSsl(readFileSync(pki.caCert)));
      const opened = await call(secure, secure.openAccount, { accountId: "tls-1", owner: "Ada", currency: "EUR", commandId: "c" });
      expect(opened.revision).toBe(0n);
      secure.close();
      const plain = connect(server.address);
      const error = await rejection(call(plain, plain.getAccount, { accountId: "tls-1" }, { deadline: new Date(Date.now() + 3000) }));
      expect([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]).toContain(error.code);
      plain.close();
    } finally {
      await server.stop();
    }
  });

  it("with a client CA, accepts only clients presenting a certificate it signed", async () => {
    const server = await startTestServer({
      env: { EVENTBANK_TLS_CERT_FILE: pki.serverCert, EVENTBANK_TLS_KEY_FILE: pki.serverKey, EVENTBANK_TLS_CLIENT_CA_FILE: pki.caCert },
    });
    try {
      const withCert = new AccountServiceClient(
        server.address,
        credentials.createSsl(readFileSync(pki.caCert), readFileSync(pki.clientKey), readFileSync(pki.clientCert)),
      );
      expect((await call(withCert, withCert.openAccount, { accountId: "mtls", owner: "Ada", currency: "EUR", commandId: "c" })).revision).toBe(0n);
      withCert.close();
      const withoutCert = new AccountServiceClient(server.address, credentials.createSsl(readFileSync(pki.caCert)));
      const error = await rejection(call(withoutCert, withoutCert.getAccount, { accountId: "mtls" }, { deadline: new Date(Date.now() + 3000) }));
      expect([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]).toContain(error.code);
      withoutCert.close();
    } finally {
      await server.stop();
    }
  });
});

describe("authentication with API keys", () => {
  let server: TestServer;
  let client: AccountServiceClient;
  const tokens = { writer: "writer-token-0123456789", reader: "reader-token-0123456789", watcher: "watcher-token-0123456789" };

  beforeAll(async () => {
    const keys = [
      { name: "teller", sha256: hashToken(tokens.writer).toString("hex"), scopes: ["accounts:write", "accounts:read"] },
      { name: "auditor", sha256: hashToken(tokens.reader).toString("hex"), scopes: ["accounts:read"] },
      { name: "projector", sha256: hashToken(tokens.watcher).toString("hex"), scopes: ["events:subscribe"] },
    ];
    server = await startTestServer({ env: { EVENTBANK_API_KEYS: JSON.stringify(keys), EVENTBANK_REFLECTION: "false" } });
    client = connect(server.address);
  });
  afterAll(async () => {
    client.close();
    await server.stop();
  });

  const as = (token: string | undefined) => {
    const metadata = new Metadata();
    if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
    return { metadata };
  };

  it("answers UNAUTHENTICATED without a token or with an unknown one, and writes nothing", async () => {
    const request = { accountId: "auth-none", owner: "Ada", currency: "EUR", commandId: "c" };
    expect(await rejection(call(client, client.openAccount, request))).toMatchObject({ code: status.UNAUTHENTICATED, reason: "UNAUTHENTICATED" });
    expect(await rejection(call(client, client.openAccount, request, as("not-a-key")))).toMatchObject({ code: status.UNAUTHENTICATED });
    const basic = new Metadata();
    basic.set("authorization", `Basic ${Buffer.from("a:b").toString("base64")}`);
    expect(await rejection(call(client, client.openAccount, request, { metadata: basic }))).toMatchObject({ code: status.UNAUTHENTICATED });
    expect(await rejection(call(client, client.getAccount, { accountId: "auth-none" }, as(tokens.reader)))).toMatchObject({ code: status.NOT_FOUND });
  });

  it("answers PERMISSION_DENIED for a key without the RPC's scope", async () => {
    const denied = await rejection(call(client, client.deposit, { accountId: "x", amount: 1n, commandId: "c" }, as(tokens.reader)));
    expect(denied).toMatchObject({ code: status.PERMISSION_DENIED, reason: "PERMISSION_DENIED", metadata: { required_scope: "accounts:write" } });
    const stream = client.subscribeAll({}, as(tokens.writer).metadata);
    const error = await readMessages<SubscribeAccountResponse>(stream).next().catch((e: unknown) => e);
    expect(decodeError(error)).toMatchObject({ code: status.PERMISSION_DENIED });
  });

  it("lets each scope do its job, logs the principal and records it in event metadata", async () => {
    await call(client, client.openAccount, { accountId: "auth-ok", owner: "Ada", currency: "EUR", commandId: "c1" }, as(tokens.writer));
    expect((await call(client, client.getAccount, { accountId: "auth-ok" }, as(tokens.reader))).account?.revision).toBe(0n);
    const stream = client.subscribeAccount({ accountId: "auth-ok" }, as(tokens.watcher).metadata);
    expect((await readMessages<SubscribeAccountResponse>(stream).next()).message?.$case).toBe("event");
    stream.cancel();
    const stored = await server.eventbank.store.readStream("account-auth-ok");
    expect(stored.status === "ok" && stored.events[0]?.metadata.principal).toBe("teller");
    const line = server.logs.find((l) => l.rpc === "OpenAccount" && l.accountId === "auth-ok");
    expect(line).toMatchObject({ principal: "teller", code: "OK" });
  });

  it("keeps health open and reflection switched off", async () => {
    expect(await checkHealth(server.address, "")).toBe("SERVING");
    const off = await askReflection(server.address, "v1", { listServices: "*" }).catch((error: { code: number }) => error);
    expect(off.code).toBe(status.UNIMPLEMENTED);
  });
});

describe("limits", () => {
  it("says loudly at start-up when authentication is off", async () => {
    const server = await startTestServer();
    try {
      expect(server.logs.some((l) => l.level === 40 && String(l.msg).includes("AUTHENTICATION IS OFF"))).toBe(true);
    } finally {
      await server.stop();
    }
  });

  it("refuses subscriptions past EVENTBANK_MAX_SUBSCRIPTIONS and admits again after one ends", async () => {
    const server = await startTestServer({ env: { EVENTBANK_MAX_SUBSCRIPTIONS: "2" } });
    const client = connect(server.address);
    try {
      const first = client.subscribeAll({});
      const second = client.subscribeAll({});
      await readMessages(first).next();
      await readMessages(second).next();
      const third = await readMessages(client.subscribeAll({})).next().catch((e: unknown) => e);
      expect(decodeError(third)).toMatchObject({ code: status.RESOURCE_EXHAUSTED, reason: "TOO_MANY_SUBSCRIPTIONS" });
      first.cancel();
      await waitUntil(() => server.eventbank.server.openStreams() === 1);
      const fourth = client.subscribeAll({});
      expect((await readMessages<SubscribeAccountResponse>(fourth).next()).message?.$case).toBe("caughtUp");
      second.cancel();
      fourth.cancel();
    } finally {
      client.close();
      await server.stop();
    }
  });
});

describe("HTTP/2 streams per connection", () => {
  it("serves at most EVENTBANK_MAX_STREAMS_PER_CONNECTION streams of one connection at a time", async () => {
    const server = await startTestServer({ env: { EVENTBANK_MAX_STREAMS_PER_CONNECTION: "2" } });
    const client = connect(server.address);
    try {
      const streams = [client.subscribeAll({}), client.subscribeAll({}), client.subscribeAll({})];
      const [first, second, third] = streams.map((stream) => readMessages<SubscribeAccountResponse>(stream));
      expect((await first!.next()).message?.$case).toBe("caughtUp");
      expect((await second!.next()).message?.$case).toBe("caughtUp");
      // The third waits for a free stream slot instead of reaching the server.
      await expect(third!.next(1_000)).rejects.toThrow("no message in time");
      expect(server.eventbank.server.openStreams()).toBe(2);
      for (const stream of streams) stream.cancel();
    } finally {
      client.close();
      await server.stop();
    }
  });
});

async function waitUntil(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 250 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(condition()).toBe(true);
}

/** A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
function makePki(dir: string) {
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=eventbank test CA", "-keyout", file("ca.key"), "-out", file("ca.crt"));
  const issue = (name: string, subject: string, extensions: string) => {
    writeFileSync(file(`${name}.ext`), extensions);
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`));
    openssl("x509", "-req", "-in", file(`${name}.csr`), "-CA", file("ca.crt"), "-CAkey", file("ca.key"), "-CAcreateserial", "-days", "1", "-extfile", file(`${name}.ext`), "-out", file(`${name}.crt`));
  };
  issue("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  issue("client", "/CN=ledger-service", "extendedKeyUsage=clientAuth\n");
  return {
    caCert: file("ca.crt"),
    serverCert: file("server.crt"),
    serverKey: file("server.key"),
    clientCert: file("client.crt"),
    clientKey: file("client.key"),
  };
}
