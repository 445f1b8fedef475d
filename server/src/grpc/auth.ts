/**
 * Bearer-token authentication with static API keys and scopes. Keys are
 * configured as SHA-256 hashes (never in clear), compared in constant time.
 * Checked once per call in rpc-handlers.ts, before any handler runs;
 * grpc.health.v1 and reflection are not AccountService calls and stay open.
 */
import { status, type Metadata } from "@grpc/grpc-js";
import { createHash, timingSafeEqual } from "node:crypto";
import { RpcError } from "./status-mapping.js";

export const SCOPES = ["accounts:write", "accounts:read", "events:subscribe", "transfers:write", "transfers:read"] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKey {
  /** Who holds the key; logged and recorded in event metadata as the principal. */
  name: string;
  /** SHA-256 of the token, 32 bytes. */
  sha256: Buffer;
  scopes: ReadonlySet<Scope>;
}

/** The scope each AccountService RPC needs. */
export const RPC_SCOPES: Record<string, Scope> = {
  OpenAccount: "accounts:write",
  Deposit: "accounts:write",
  Withdraw: "accounts:write",
  CloseAccount: "accounts:write",
  GetAccount: "accounts:read",
  ReadAccountEvents: "accounts:read",
  SubscribeAccount: "events:subscribe",
  SubscribeAll: "events:subscribe",
  TransferMoney: "transfers:write",
  GetTransfer: "transfers:read",
};

export function hashToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/** Returns the principal (the key's name), or throws UNAUTHENTICATED / PERMISSION_DENIED. */
export function authenticate(keys: readonly ApiKey[], rpc: string, metadata: Metadata): string {
  const header = metadata.get("authorization")[0];
  const match = typeof header === "string" ? /^Bearer +([^\s]+)\s*$/i.exec(header) : null;
  if (!match) {
    throw new RpcError(status.UNAUTHENTICATED, "UNAUTHENTICATED", "missing bearer token: send metadata 'authorization: Bearer <api key>'");
  }
  const presented = hashToken(match[1]!);
  // Compare against every key, so the time taken does not tell which one matched.
  let found: ApiKey | undefined;
  for (const key of keys) {
    if (timingSafeEqual(key.sha256, presented) && !found) found = key;
  }
  if (!found) throw new RpcError(status.UNAUTHENTICATED, "UNAUTHENTICATED", "invalid bearer token");
  const needed = RPC_SCOPES[rpc];
  if (!needed || !found.scopes.has(needed)) {
    throw new RpcError(status.PERMISSION_DENIED, "PERMISSION_DENIED", `${rpc} needs scope ${needed ?? "(none defined)"}`, {
      principal: found.name,
      required_scope: needed ?? "",
    });
  }
  return found.name;
}
