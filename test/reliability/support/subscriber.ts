/** Collects a subscription's events for later comparison with the store. */
import { status, type ClientReadableStream } from "@grpc/grpc-js";
import type { AccountEvent } from "../../../client/src/gen/bank/v1/account.js";
import type { SubscribeAccountResponse, SubscribeAllResponse } from "../../../client/src/gen/bank/v1/account_service.js";
import { decodeError, type DecodedError } from "../../support/grpc-client.js";

export interface Collected {
  events: AccountEvent[];
  caughtUp: boolean;
  /** How the stream ended, if it did (CANCELLED by us is not recorded). */
  ended: DecodedError | "end" | undefined;
  cancel(): void;
}

export function collect(stream: ClientReadableStream<SubscribeAllResponse | SubscribeAccountResponse>, accept: (event: AccountEvent) => boolean = () => true): Collected {
  const collected: Collected = {
    events: [],
    caughtUp: false,
    ended: undefined,
    cancel: () => stream.cancel(),
  };
  stream.on("data", (message: SubscribeAllResponse) => {
    if (message.message?.$case === "caughtUp") collected.caughtUp = true;
    else if (message.message?.$case === "event" && accept(message.message.value)) collected.events.push(message.message.value);
  });
  stream.on("error", (error) => {
    const decoded = decodeError(error);
    if (decoded.code !== status.CANCELLED) collected.ended = decoded;
  });
  stream.on("end", () => {
    collected.ended ??= "end";
  });
  return collected;
}

/** Positions are opaque strings; both stores' forms ("123" and "commit/prepare") compare as tuples of integers. */
export function comparePositions(a: string, b: string): number {
  const pa = a.split("/").map(BigInt);
  const pb = b.split("/").map(BigInt);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0n;
    const y = pb[i] ?? 0n;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}
