/**
 * The README's grpcurl examples stay true: every `-d` body parses, under the
 * canonical proto3 JSON mapping grpcurl uses, as the request of the method it
 * calls, read from the descriptor set the server serves through reflection.
 */
import { createFileRegistry, fromBinary, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url);
const readme = readFileSync(new URL("README.md", root), "utf8");
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(new URL("server/gen/descriptor-set.binpb", root))));

/** Each grpcurl command of the README (line continuations joined) with its body and method. */
function grpcurlCalls(): Array<{ body: string; service: string; method: string }> {
  const joined = readme.replace(/\\\n\s*/g, " ");
  const calls = [];
  for (const line of joined.split("\n")) {
    const match = /grpcurl .*?-d '([^']*)'.*?\s([a-z0-9.]+\.[A-Z]\w*)\/(\w+)/.exec(line);
    if (match) calls.push({ body: match[1]!, service: match[2]!, method: match[3]! });
  }
  return calls;
}

describe("README grpcurl examples", () => {
  const calls = grpcurlCalls();

  it("finds an example for every AccountService RPC", () => {
    const service = registry.getService("bank.v1.AccountService");
    expect(service).toBeDefined();
    const shown = new Set(calls.filter((c) => c.service === "bank.v1.AccountService").map((c) => c.method));
    expect([...shown].sort()).toEqual(service!.methods.map((m) => m.name).sort());
  });

  it.each(calls.map((c) => [`${c.service}/${c.method} ${c.body}`, c] as const))("parses %s", (_name, call) => {
    const service = registry.getService(call.service);
    expect(service, `service ${call.service}`).toBeDefined();
    const method = service!.methods.find((m) => m.name === call.method);
    expect(method, `method ${call.method}`).toBeDefined();
    expect(() => fromJson(method!.input, JSON.parse(call.body) as JsonValue)).not.toThrow();
  });
});
