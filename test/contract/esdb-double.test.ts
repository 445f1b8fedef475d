/**
 * The EventStoreDB double against what @eventstore/db-client 6.2.1 expects
 * of EventStoreDB 24.10, one test per modelled behaviour, through the real
 * client (the cases follow the client's own tests, e.g.
 * packages/test/src/streams/appendToStream-errors.test.ts in
 * kurrent-io/KurrentDB-Client-NodeJS). docs/eventstoredb.md lists the
 * sources and what only a real server can show.
 */
import {
  AccessDeniedError,
  BACKWARDS,
  DeadlineExceededError,
  END,
  EventStoreDBClient,
  FORWARDS,
  jsonEvent,
  MaxAppendSizeExceededError,
  persistentSubscriptionToStreamSettingsFromDefaults,
  START,
  StreamDeletedError,
  StreamNotFoundError,
  streamNameFilter,
  TimeoutError,
  WrongExpectedVersionError,
  type AllStreamResolvedEvent,
  type ResolvedEvent,
} from "@eventstore/db-client";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_MAX_APPEND_SIZE, startEsdbDouble, type EsdbDouble } from "../support/esdb-double/server.js";
import { testCertificates, type TestCertificates } from "../support/esdb-double/tls.js";

const events = (count: number, data: Record<string, unknown> = { n: 1 }) =>
  Array.from({ length: count }, () => jsonEvent({ type: "Tested", data }));

async function collect(read: AsyncIterable<ResolvedEvent | AllStreamResolvedEvent>): Promise<Array<{ stream: string; revision: bigint; type: string }>> {
  const out = [];
  for await (const { event } of read) if (event) out.push({ stream: event.streamId, revision: event.revision, type: event.type });
  return out;
}

const rejection = (work: Promise<unknown>) => work.then(() => expect.unreachable("should have failed"), (error: unknown) => error);

const modes = [
  { name: "BatchAppend", batchAppend: true },
  { name: "plain Append", batchAppend: false },
] as const;

describe.each(modes)("EventStoreDB double, insecure ($name)", ({ batchAppend }) => {
  let esdb: EsdbDouble;
  let client: EventStoreDBClient;
  beforeAll(async () => {
    esdb = await startEsdbDouble({ batchAppend, writeTimeoutMs: 100 });
    client = EventStoreDBClient.connectionString(esdb.connectionString);
  });
  afterAll(async () => {
    await client?.dispose();
    await esdb?.stop();
  });

  it("starts $all with a fresh node's system events and another application's streams", async () => {
    const all = await collect(client.readAll({ fromPosition: START, direction: FORWARDS, maxCount: 100 }));
    const streams = all.map((e) => e.stream);
    expect(streams[0]).toBe("$epoch-information");
    for (const stream of ["$user-admin", "$user-ops", "$users", "$settings", "$stats-127.0.0.1:" + esdb.port, "$$$stats-127.0.0.1:" + esdb.port, "$scavenges", "accountant-7", "accounts"]) {
      expect(streams).toContain(stream);
    }
    expect(streams.some((s) => s.startsWith("orders-"))).toBe(true);
  });

  it("answers DeadlineExceeded to an append whose deadline passes while it arrives, and writes nothing", async () => {
    const stream = `deadline-${randomUUID()}`;
    const error = await rejection(client.appendToStream(stream, events(30_000), { deadline: 1 }));
    expect(error).toBeInstanceOf(DeadlineExceededError);
    await expect(collect(client.readStream(stream))).rejects.toBeInstanceOf(StreamNotFoundError);
  });

  it.each(["written", "lost"] as const)("times out a write slower than the write timeout; the write is then %s", async (lateWrites) => {
    const stream = `slow-${lateWrites}-${randomUUID()}`;
    esdb.commitDelay({ ms: 300, lateWrites });
    try {
      const error = await rejection(client.appendToStream(stream, events(1)));
      // BatchAppend: Status.Timeout (DeadlineExceeded); plain Append: RpcExceptions.Timeout (ABORTED).
      expect(error).toBeInstanceOf(batchAppend ? DeadlineExceededError : TimeoutError);
    } finally {
      esdb.commitDelay(undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, 400));
    const written = esdb.events.filter((e) => e.stream === stream).length;
    expect(written).toBe(lateWrites === "written" ? 1 : 0);
  });

  it("refuses an append over 1 MiB with MaximumAppendSizeExceeded and writes nothing", async () => {
    const stream = `big-${randomUUID()}`;
    const error = await rejection(client.appendToStream(stream, events(40_000, { pad: "x".repeat(30) })));
    expect(error).toBeInstanceOf(MaxAppendSizeExceededError);
    expect((error as MaxAppendSizeExceededError).maxAppendSize).toBe(DEFAULT_MAX_APPEND_SIZE);
    expect(esdb.events.some((e) => e.stream === stream)).toBe(false);
    // Just under the limit is fine.
    await client.appendToStream(stream, [jsonEvent({ type: "T", data: { pad: "x".repeat(DEFAULT_MAX_APPEND_SIZE - 100) } })]);
  });

  it("applies $maxCount, $tb and $maxAge on reads (and keeps the events in $all)", async () => {
    const stream = `meta-${randomUUID()}`;
    await client.appendToStream(stream, events(20));
    await client.setStreamMetadata(stream, { maxCount: 2 });
    expect((await collect(client.readStream(stream))).map((e) => e.revision)).toEqual([18n, 19n]);
    expect((await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END, maxCount: 5 }))).map((e) => e.revision)).toEqual([19n, 18n]);
    await client.setStreamMetadata(stream, { truncateBefore: 15 });
    expect((await collect(client.readStream(stream, { fromRevision: 10n, maxCount: 2 }))).map((e) => e.revision)).toEqual([15n, 16n]);
    await client.setStreamMetadata(stream, { maxAge: 60 });
    expect(await collect(client.readStream(stream))).toHaveLength(20);
    const realNow = esdb.log.now;
    esdb.log.now = () => realNow() + 61_000;
    try {
      expect(await collect(client.readStream(stream))).toEqual([]);
    } finally {
      esdb.log.now = realNow;
    }
    expect(esdb.events.filter((e) => e.stream === stream)).toHaveLength(20);
    expect((await client.getStreamMetadata(stream)).metadata).toMatchObject({ maxAge: 60 });
  });

  it("soft-deletes: reads find no stream, a new append brings it back after the old revisions", async () => {
    const stream = `soft-${randomUUID()}`;
    await client.appendToStream(stream, events(3));
    expect(await rejection(client.deleteStream(stream, { expectedRevision: 1n }))).toMatchObject({ actualVersion: 2n });
    await client.deleteStream(stream, { expectedRevision: 2n });
    await expect(collect(client.readStream(stream))).rejects.toBeInstanceOf(StreamNotFoundError);
    const again = await client.appendToStream(stream, events(1), { expectedRevision: 2n });
    expect(again.nextExpectedRevision).toBe(3n);
    expect((await collect(client.readStream(stream))).map((e) => e.revision)).toEqual([3n]);
  });

  it("tombstones: reads, appends, deletes and subscriptions all answer StreamDeleted", async () => {
    const stream = `hard-${randomUUID()}`;
    await client.appendToStream(stream, events(2));
    expect(await rejection(client.tombstoneStream(stream, { expectedRevision: "no_stream" }))).toBeInstanceOf(WrongExpectedVersionError);
    await client.tombstoneStream(stream);
    await expect(collect(client.readStream(stream))).rejects.toBeInstanceOf(StreamDeletedError);
    expect(await rejection(client.appendToStream(stream, events(1)))).toMatchObject({ streamName: stream });
    expect(await rejection(client.appendToStream(stream, events(1)))).toBeInstanceOf(StreamDeletedError);
    expect(await rejection(client.tombstoneStream(stream))).toBeInstanceOf(StreamDeletedError);
    expect(await rejection(client.deleteStream(stream))).toBeInstanceOf(StreamDeletedError);
    const subscription = client.subscribeToStream(stream);
    await expect(collect(subscription)).rejects.toBeInstanceOf(StreamDeletedError);
    const tombstone = esdb.events.find((e) => e.stream === stream && e.type === "$streamDeleted");
    expect(tombstone?.revision).toBe((1n << 63n) - 1n);
  });

  it("sends checkpoints on a filtered $all subscription while it skips other streams", async () => {
    const prefix = `cp-${randomUUID()}-`;
    for (let i = 0; i < 40; i++) esdb.writeBackgroundEvents();
    await client.appendToStream(`${prefix}1`, events(1));
    const checkpoints: bigint[] = [];
    const subscription = client.subscribeToAll({
      fromPosition: START,
      filter: streamNameFilter({ prefixes: [prefix], maxSearchWindow: 4, checkpointInterval: 2, checkpointReached: (_s, position) => void checkpoints.push(position.commit) }),
    });
    const seen: string[] = [];
    for await (const { event } of subscription) {
      seen.push(event!.streamId);
      break;
    }
    await subscription.unsubscribe();
    expect(seen).toEqual([`${prefix}1`]);
    expect(checkpoints.length).toBeGreaterThan(10);
    expect([...checkpoints].sort((a, b) => (a < b ? -1 : 1))).toEqual(checkpoints);
  });

  it("answers UNIMPLEMENTED for what it does not model (persistent subscriptions, projections, operations)", async () => {
    for (const work of [
      () => client.createPersistentSubscriptionToStream(`ps-${randomUUID()}`, "group", persistentSubscriptionToStreamSettingsFromDefaults()),
      () => client.listProjections(),
      () => client.restartSubsystem(),
    ]) {
      const error = await rejection(work());
      expect(String((error as Error).message)).toMatch(/UNIMPLEMENTED/);
    }
  });
});

describe("EventStoreDB double, secure (TLS, users, ACLs)", () => {
  let tls: TestCertificates;
  let esdb: EsdbDouble;
  const clients: EventStoreDBClient[] = [];
  const as = (username?: string, password = "changeit") => {
    const client = EventStoreDBClient.connectionString(esdb.connectionStringFor(username ? { username, password } : undefined));
    clients.push(client);
    return client;
  };
  beforeAll(async () => {
    tls = testCertificates();
    esdb = await startEsdbDouble({ secure: tls, users: { app: { password: "app-secret" } } });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await esdb?.stop();
    tls?.remove();
  });

  it("serves TLS with the test CA and the default users admin and ops", async () => {
    expect(esdb.connectionString).toMatch(/^esdb:\/\/admin:changeit@127\.0\.0\.1:\d+\?tls=true&tlsCAFile=/);
    const admin = as("admin");
    await admin.appendToStream(`s-${randomUUID()}`, events(1));
    expect((await collect(admin.readAll({ maxCount: 3 }))).length).toBe(3);
    expect((await collect(as("ops").readAll({ maxCount: 3 }))).length).toBe(3);
  });

  it("lets a plain user write and read its streams but not read $all or $-streams", async () => {
    const app = as("app", "app-secret");
    const stream = `account-${randomUUID()}`;
    await app.appendToStream(stream, events(1), { expectedRevision: "no_stream" });
    expect(await collect(app.readStream(stream))).toHaveLength(1);
    await expect(collect(app.readAll({ maxCount: 1 }))).rejects.toBeInstanceOf(AccessDeniedError);
    await expect(collect(app.subscribeToAll({ filter: streamNameFilter({ prefixes: ["account-"] }) }))).rejects.toBeInstanceOf(AccessDeniedError);
    await expect(collect(app.readStream("$settings"))).rejects.toBeInstanceOf(AccessDeniedError);
    expect(await rejection(app.appendToStream("$eventbank-probe", events(1)))).toBeInstanceOf(AccessDeniedError);
  });

  it("refuses a wrong password, an unknown user and anonymous callers", async () => {
    for (const client of [as("admin", "wrong"), as("AzureDiamond", "hunter2"), as()]) {
      expect(await rejection(client.appendToStream(`s-${randomUUID()}`, events(1)))).toBeInstanceOf(AccessDeniedError);
      await expect(collect(client.readStream("$settings"))).rejects.toBeInstanceOf(AccessDeniedError);
    }
  });

  it("applies a stream's $acl", async () => {
    const admin = as("admin");
    const app = as("app", "app-secret");
    const stream = `locked-${randomUUID()}`;
    await admin.appendToStream(stream, events(1));
    await admin.setStreamMetadata(stream, { acl: { writeRoles: ["some_user"], readRoles: ["$all"] } });
    expect(await rejection(app.appendToStream(stream, events(1)))).toBeInstanceOf(AccessDeniedError);
    expect(await collect(app.readStream(stream))).toHaveLength(1);
  });
});
