/**
 * The three-node mode of the EventStoreDB double (test/support/esdb-double/
 * cluster.ts) and the adapter on it over `esdb+discover://`: the store
 * contract suite, then one test per cluster behaviour, through the real
 * `@eventstore/db-client` 6.2.1.
 */
import {
  EventStoreDBClient,
  FOLLOWER,
  jsonEvent,
  LEADER,
  NotLeaderError,
  VNodeState,
  type ResolvedEvent,
} from "@eventstore/db-client";
// The client's own discovery: what it does with a Gossip answer (not exported from the package root).
import { discoverEndpoint } from "@eventstore/db-client/dist/Client/discovery.js";
import gossipGrpc from "@eventstore/db-client/generated/gossip_grpc_pb.js";
import sharedPb from "@eventstore/db-client/generated/shared_pb.js";
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEsdbEventStore } from "../../server/src/store/esdb-event-store.js";
import { startEsdbCluster, type EsdbCluster } from "../support/esdb-double/cluster.js";
import { describeEventStoreContract, event } from "./event-store-contract.js";

let cluster: EsdbCluster;
let legacy: EsdbCluster;
beforeAll(async () => {
  [cluster, legacy] = await Promise.all([startEsdbCluster(), startEsdbCluster({ batchAppend: false })]);
});
afterAll(async () => {
  await Promise.all([cluster?.stop(), legacy?.stop()]);
});

describeEventStoreContract("esdb (three-node gRPC double, esdb+discover://, BatchAppend)", async () => {
  const store = createEsdbEventStore(cluster.connectionString);
  return { store, cleanup: () => store.close() };
});

/** Gossip.Read on one node, with the client's generated stub. */
function readGossip(port: number) {
  const client = new gossipGrpc.GossipClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise<Array<{ state: number; isAlive: boolean; port: number }>>((resolve, reject) =>
    client.read(new sharedPb.Empty(), (error, info) => {
      client.close();
      if (error || !info) return reject(error);
      resolve(info.getMembersList().map((m) => ({ state: m.getState(), isAlive: m.getIsAlive(), port: m.getHttpEndPoint()!.getPort() })));
    }),
  );
}

const direct = (port: number) => EventStoreDBClient.connectionString(`esdb://127.0.0.1:${port}?tls=false`);
const ports = (c: EsdbCluster) => c.nodes.map((node) => node.port);

describe("three-node EventStoreDB double", () => {
  it("answers Gossip on every node with one alive leader and alive followers, and the client discovers by it", async () => {
    for (const port of ports(cluster)) {
      const members = await readGossip(port);
      expect(members.map((m) => m.port).sort()).toEqual([...ports(cluster)].sort());
      expect(members.every((m) => m.isAlive)).toBe(true);
      expect(members.filter((m) => m.state === VNodeState.LEADER).map((m) => m.port)).toEqual([cluster.nodes[cluster.leader()]!.port]);
      expect(members.filter((m) => m.state === VNodeState.FOLLOWER)).toHaveLength(2);
    }
    const seed = { address: "127.0.0.1", port: cluster.nodes[2]!.port };
    const insecure = grpc.credentials.createInsecure();
    expect(await discoverEndpoint({ discover: seed, nodePreference: LEADER }, insecure)).toEqual({ address: "127.0.0.1", port: cluster.nodes[cluster.leader()]!.port });
    const follower = await discoverEndpoint({ discover: seed, nodePreference: FOLLOWER }, insecure);
    expect(follower.port).not.toBe(cluster.nodes[cluster.leader()]!.port);
    expect(ports(cluster)).toContain(follower.port);
  });

  it.each([
    ["BatchAppend", () => cluster],
    ["plain Append", () => legacy],
  ])("answers a follower's requires-leader calls with not-leader and the leader's address, and serves the others (%s)", async (_, which) => {
    const c = which();
    const leaderPort = c.nodes[c.leader()]!.port;
    const followerPort = c.nodes.find((node) => node.port !== leaderPort)!.port;
    // A fresh client per step: after not-leader the client reconnects to the leader it was given.
    const onFollower = async <T>(use: (client: EventStoreDBClient) => Promise<T>): Promise<T> => {
      const client = direct(followerPort);
      try {
        return await use(client);
      } finally {
        await client.dispose();
      }
    };
    const stream = `follower-${randomUUID()}`;
    const refused = await onFollower((client) =>
      client.appendToStream(stream, jsonEvent({ type: "Led", data: {} }), { requiresLeader: true }).catch((e: unknown) => e),
    );
    expect(refused).toBeInstanceOf(NotLeaderError);
    expect((refused as NotLeaderError).leader).toEqual({ address: "127.0.0.1", port: leaderPort });
    expect(c.log.stream(stream)).toBeUndefined();
    const read = await onFollower(async (client) => {
      for await (const _ of client.readStream(stream, { requiresLeader: true }));
    }).catch((e: unknown) => e);
    expect(read).toBeInstanceOf(NotLeaderError);
    // Without requires-leader a follower forwards the write to the leader and serves the read itself.
    await onFollower((client) => client.appendToStream(stream, jsonEvent({ type: "Forwarded", data: {} }), { expectedRevision: "no_stream" }));
    const events = await onFollower(async (client) => {
      const read: ResolvedEvent[] = [];
      for await (const resolved of client.readStream(stream)) read.push(resolved);
      return read;
    });
    expect(events.map((e) => e.event?.type)).toEqual(["Forwarded"]);
  });

  it("moves leadership: gossip follows, the old leader refuses with the new address, and the client reconnects there", async () => {
    const c = await startEsdbCluster();
    const client = EventStoreDBClient.connectionString(c.connectionString);
    try {
      const stream = `moving-${randomUUID()}`;
      const append = (type: string) => client.appendToStream(stream, jsonEvent({ type, data: {} }), { requiresLeader: true });
      await append("BeforeMove");
      const old = c.leader();
      c.moveLeader(1);
      expect(c.leader()).toBe(1);
      const members = await readGossip(c.nodes[old]!.port);
      expect(members.find((m) => m.port === c.nodes[1]!.port)!.state).toBe(VNodeState.LEADER);
      expect(members.find((m) => m.port === c.nodes[old]!.port)!.state).toBe(VNodeState.FOLLOWER);
      // The client still talks to the old leader: it refuses, naming the new one.
      const refused = await append("Refused").catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(NotLeaderError);
      expect((refused as NotLeaderError).leader.port).toBe(c.nodes[1]!.port);
      await new Promise((resolve) => setTimeout(resolve, 50));
      // Only a leader accepts requires-leader: this one reached node 1.
      await append("AfterMove");
      expect(c.log.stream(stream)!.map((e) => e.type)).toEqual(["BeforeMove", "AfterMove"]);
    } finally {
      await client.dispose();
      await c.stop();
    }
  });
});

describe("EventStoreDB adapter over esdb+discover:// while leadership moves", () => {
  it("keeps appending and reading, and a $all subscription resumes without gap or duplicate", async () => {
    const c = await startEsdbCluster();
    const store = createEsdbEventStore(c.connectionString, { initialBackoffMs: 20 });
    try {
      const prefix = `moves-${randomUUID().slice(0, 8)}-`;
      const subscription = store.subscribeToAll({ streamPrefix: prefix });
      const seen: string[] = [];
      const consumer = (async () => {
        for await (const message of subscription) if (message.type === "event") seen.push(message.event.id);
      })();
      const written: string[] = [];
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < 5; i++) {
          const stream = `${prefix}${i}`;
          const current = await store.readStream(stream, { direction: "backwards", maxCount: 1 });
          const expected = current.status === "ok" ? current.events[0]!.revision : "no_stream";
          const sent = event("Moved", { round });
          await store.append(stream, [sent], expected);
          written.push(sent.id);
        }
        // The old leader ends its subscriptions; the next append meets not-leader.
        c.moveLeader();
      }
      for (let i = 0; i < 200 && seen.length < written.length; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(seen).toEqual(written);
      await subscription.close();
      await consumer;
      expect(c.leader()).toBe(4 % 3);
    } finally {
      await store.close();
      await c.stop();
    }
  });

  it("keeps serving when the leader's node stops, through gossip from a node still up", async () => {
    const c = await startEsdbCluster();
    // Seeded at node 2, as DNS would name a node that answers.
    const store = createEsdbEventStore(c.connectionStringVia(2), { initialBackoffMs: 20 });
    try {
      const stream = `stopped-${randomUUID()}`;
      const first = await store.append(stream, [event("BeforeStop")], "no_stream");
      await c.stopNode(c.leader());
      expect(c.leader()).toBe(1);
      // The first call after the stop may find the connection gone (STORE_UNAVAILABLE); the client rediscovers.
      const again = () => store.append(stream, [event("AfterStop")], first.nextExpectedRevision);
      const result = await again().catch(async () => again());
      expect(result.nextExpectedRevision).toBe(1n);
      expect(c.log.stream(stream)!.map((e) => e.type)).toEqual(["BeforeStop", "AfterStop"]);
    } finally {
      await store.close();
      await c.stop();
    }
  });
});
