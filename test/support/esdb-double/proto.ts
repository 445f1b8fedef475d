/**
 * The protobuf classes and service definitions the double serves, loaded from
 * the very files `@eventstore/db-client` uses. The generated serializers check
 * `instanceof`, so a second copy of these modules (or of google-protobuf)
 * would make every response fail to serialize. Loading google-protobuf with a
 * require anchored in the client's generated folder resolves the same copy the
 * generated code itself requires.
 */
import { createRequire } from "node:module";
import type * as AnyPbModule from "google-protobuf/google/protobuf/any_pb.js";
import type * as EmptyPbModule from "google-protobuf/google/protobuf/empty_pb.js";
import gossipGrpc from "@eventstore/db-client/generated/gossip_grpc_pb.js";
import gossipPb from "@eventstore/db-client/generated/gossip_pb.js";
import serverFeaturesGrpc from "@eventstore/db-client/generated/serverfeatures_grpc_pb.js";
import serverFeaturesPb from "@eventstore/db-client/generated/serverfeatures_pb.js";
import sharedPb from "@eventstore/db-client/generated/shared_pb.js";
import statusPb from "@eventstore/db-client/generated/status_pb.js";
import streamsGrpc from "@eventstore/db-client/generated/streams_grpc_pb.js";
import streamsPb from "@eventstore/db-client/generated/streams_pb.js";

const requireFromClient = createRequire(createRequire(import.meta.url).resolve("@eventstore/db-client/generated/streams_pb.js"));
const anyPb = requireFromClient("google-protobuf/google/protobuf/any_pb.js") as typeof AnyPbModule;
const emptyPb = requireFromClient("google-protobuf/google/protobuf/empty_pb.js") as typeof EmptyPbModule;

export { anyPb, emptyPb, gossipGrpc, gossipPb, serverFeaturesGrpc, serverFeaturesPb, sharedPb, statusPb, streamsGrpc, streamsPb };

/** A UUID message in the format the client asked for (it asks for strings). */
export function toUuid(id: string, structured: boolean): InstanceType<typeof sharedPb.UUID> {
  const uuid = new sharedPb.UUID();
  if (!structured) return uuid.setString(id);
  const hex = id.replace(/-/g, "");
  const signed = (h: string) => BigInt.asIntN(64, BigInt(`0x${h}`)).toString(10);
  return uuid.setStructured(
    new sharedPb.UUID.Structured()
      .setMostSignificantBits(signed(hex.slice(0, 16)))
      .setLeastSignificantBits(signed(hex.slice(16))),
  );
}

export function fromUuid(uuid: InstanceType<typeof sharedPb.UUID> | undefined): string {
  if (!uuid) throw new Error("event without an id");
  if (uuid.hasStructured()) {
    const s = uuid.getStructured()!;
    const hex = (v: string) => BigInt.asUintN(64, BigInt(v)).toString(16).padStart(16, "0");
    const all = hex(s.getMostSignificantBits()) + hex(s.getLeastSignificantBits());
    return `${all.slice(0, 8)}-${all.slice(8, 12)}-${all.slice(12, 16)}-${all.slice(16, 20)}-${all.slice(20)}`;
  }
  return uuid.getString();
}

export function streamName(identifier: InstanceType<typeof sharedPb.StreamIdentifier> | undefined): string {
  if (!identifier) throw new Error("missing stream identifier");
  return Buffer.from(identifier.getStreamName_asU8()).toString("utf8");
}

export function streamIdentifier(name: string): InstanceType<typeof sharedPb.StreamIdentifier> {
  return new sharedPb.StreamIdentifier().setStreamName(Uint8Array.from(Buffer.from(name, "utf8")));
}
