/**
 * A TEST DOUBLE of EventStoreDB: a gRPC server speaking the same protocol as
 * EventStoreDB (Streams.Read / Append / BatchAppend and ServerFeatures), built
 * on the service definitions `@eventstore/db-client` ships, with in-memory
 * storage. It lets the EsdbEventStore adapter be tested through the real
 * client library without a database. It is never a store the server can use.
 *
 * Fault hooks simulate what a real deployment does to a client: dropping
 * subscriptions, and the whole store going away and coming back on the same
 * port (pause/resume).
 *
 * Usable from a test's beforeAll or a vitest globalSetup:
 *   const esdb = await startEsdbDouble();
 *   ... EVENTSTORE_CONNECTION_STRING = esdb.connectionString ...
 *   await esdb.stop();
 */
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { InMemoryLog, type Expected, type ProposedEvent, type StoredEvent } from "./log.js";
import {
  anyPb,
  emptyPb,
  fromUuid,
  RPC_CODE_FAILED_PRECONDITION,
  serverFeaturesGrpc,
  serverFeaturesPb,
  sharedPb,
  statusPb,
  streamIdentifier,
  streamName,
  streamsGrpc,
  streamsPb,
  toUuid,
} from "./proto.js";

type ReadReq = InstanceType<typeof streamsPb.ReadReq>;
type ReadResp = InstanceType<typeof streamsPb.ReadResp>;
type ReadOptions = InstanceType<typeof streamsPb.ReadReq.Options>;
type AppendReq = InstanceType<typeof streamsPb.AppendReq>;
type AppendResp = InstanceType<typeof streamsPb.AppendResp>;
type BatchAppendReq = InstanceType<typeof streamsPb.BatchAppendReq>;
type BatchAppendResp = InstanceType<typeof streamsPb.BatchAppendResp>;

export interface EsdbDoubleOptions {
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /**
   * Answer ServerFeatures and advertise BatchAppend, as EventStoreDB 21.10+
   * does, so the client appends through BatchAppend (default true). false:
   * ServerFeatures is UNIMPLEMENTED, like an old server, and the client falls
   * back to plain Append.
   */
  batchAppend?: boolean;
}

export interface EsdbDouble {
  /** `esdb://127.0.0.1:<port>?tls=false`, ready for EventStoreDBClient.connectionString. */
  readonly connectionString: string;
  readonly port: number;
  /** Everything appended so far, in log order (for assertions). */
  readonly events: readonly StoredEvent[];
  /** Number of subscription calls open right now. */
  activeSubscriptions(): number;
  /** Events written to subscription calls so far (flow control holds writes back from a slow reader). */
  sentEvents(): number;
  /** End every open subscription call with `code` (default UNAVAILABLE), as a server restart or leader change does. */
  dropSubscriptions(code?: grpc.status): void;
  /** The store goes away: every connection is cut and the port stops listening. Data is kept. */
  pause(): Promise<void>;
  /** The store comes back on the same port with the same data. */
  resume(): Promise<void>;
  /** Shut down for good. */
  stop(): Promise<void>;
}

interface OpenSubscription {
  drop(code: grpc.status): void;
}

/** What the server's subscriptions share: the open calls and a count of events sent. */
interface SubscriptionRegistry {
  open: Set<OpenSubscription>;
  sent: number;
}

export async function startEsdbDouble(options: EsdbDoubleOptions = {}): Promise<EsdbDouble> {
  const log = new InMemoryLog();
  const registry: SubscriptionRegistry = { open: new Set(), sent: 0 };
  const subscriptions = registry.open;
  const batchAppend = options.batchAppend ?? true;
  let server: grpc.Server | undefined;
  let port = options.port ?? 0;

  const listen = async (): Promise<void> => {
    const next = createServer(log, registry, batchAppend);
    port = await new Promise<number>((resolve, reject) => {
      next.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      );
    });
    server = next;
  };
  const shutdown = (): void => {
    for (const subscription of [...subscriptions]) subscription.drop(grpc.status.UNAVAILABLE);
    server?.forceShutdown();
    server = undefined;
  };

  await listen();
  return {
    get connectionString() {
      return `esdb://127.0.0.1:${port}?tls=false`;
    },
    get port() {
      return port;
    },
    events: log.all,
    activeSubscriptions: () => subscriptions.size,
    sentEvents: () => registry.sent,
    dropSubscriptions(code = grpc.status.UNAVAILABLE) {
      for (const subscription of [...subscriptions]) subscription.drop(code);
    },
    async pause() {
      shutdown();
    },
    async resume() {
      if (!server) await listen();
    },
    async stop() {
      shutdown();
    },
  };
}

function createServer(log: InMemoryLog, registry: SubscriptionRegistry, batchAppend: boolean): grpc.Server {
  const server = new grpc.Server();
  const streams: grpc.UntypedServiceImplementation = {
    read: (call: grpc.ServerWritableStream<ReadReq, ReadResp>) => {
      handleRead(log, registry, call).catch((error: unknown) => {
        call.emit("error", { code: grpc.status.INTERNAL, details: String(error) });
      });
    },
    append: (call: grpc.ServerReadableStream<AppendReq, AppendResp>, callback: grpc.sendUnaryData<AppendResp>) => {
      handleAppend(log, call, callback);
    },
    batchAppend: (call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>) => {
      handleBatchAppend(log, call);
    },
  };
  server.addService(streamsGrpc.StreamsService, streams);
  if (batchAppend) {
    server.addService(serverFeaturesGrpc.ServerFeaturesService, {
      getSupportedMethods: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => {
        const method = (service: string, name: string) =>
          new serverFeaturesPb.SupportedMethod().setServiceName(service).setMethodName(name);
        const streamsService = "event_store.client.streams.Streams";
        callback(
          null,
          new serverFeaturesPb.SupportedMethods()
            .setEventStoreServerVersion("24.10.0-double")
            .setMethodsList([
              method(streamsService, "Read"),
              method(streamsService, "Append"),
              method(streamsService, "BatchAppend"),
            ]),
        );
      },
    });
  }
  return server;
}

// ---------------------------------------------------------------- appends

function expectedFromAppend(options: InstanceType<typeof streamsPb.AppendReq.Options>): Expected {
  if (options.hasRevision()) return { kind: "revision", revision: BigInt(options.getRevision()) };
  if (options.hasNoStream()) return { kind: "no_stream" };
  if (options.hasStreamExists()) return { kind: "stream_exists" };
  return { kind: "any" };
}

function expectedFromBatch(options: InstanceType<typeof streamsPb.BatchAppendReq.Options>): Expected {
  if (options.hasStreamPosition()) return { kind: "revision", revision: BigInt(options.getStreamPosition()) };
  if (options.hasNoStream()) return { kind: "no_stream" };
  if (options.hasStreamExists()) return { kind: "stream_exists" };
  return { kind: "any" };
}

function proposedEvent(message: {
  getId(): InstanceType<typeof sharedPb.UUID> | undefined;
  getMetadataMap(): { get(key: string): string | undefined };
  getData_asU8(): Uint8Array;
  getCustomMetadata_asU8(): Uint8Array;
}): ProposedEvent {
  const metadata = message.getMetadataMap();
  const type = metadata.get("type");
  const contentType = metadata.get("content-type");
  // EventStoreDB rejects a proposed message without these two (RequiredMetadataPropertyMissing).
  if (!type || !contentType) throw new Error("proposed message without type or content-type");
  return {
    id: fromUuid(message.getId()),
    type,
    contentType,
    data: message.getData_asU8(),
    metadata: message.getCustomMetadata_asU8(),
  };
}

/** Streams.Append: an options message, then one message per event; one response. */
function handleAppend(
  log: InMemoryLog,
  call: grpc.ServerReadableStream<AppendReq, AppendResp>,
  callback: grpc.sendUnaryData<AppendResp>,
): void {
  let stream: string | undefined;
  let expected: Expected = { kind: "any" };
  const proposed: ProposedEvent[] = [];
  let failed = false;
  call.on("data", (req: AppendReq) => {
    try {
      if (req.hasOptions()) {
        stream = streamName(req.getOptions()!.getStreamIdentifier());
        expected = expectedFromAppend(req.getOptions()!);
      } else if (req.hasProposedMessage()) {
        proposed.push(proposedEvent(req.getProposedMessage()!));
      }
    } catch (error) {
      failed = true;
      callback({ code: grpc.status.INVALID_ARGUMENT, details: String(error) });
    }
  });
  call.on("end", () => {
    if (failed) return;
    if (stream === undefined) {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: "append without options" });
      return;
    }
    const outcome = log.append(stream, proposed, expected);
    const resp = new streamsPb.AppendResp();
    if (outcome.ok) {
      resp.setSuccess(
        new streamsPb.AppendResp.Success()
          .setCurrentRevision(outcome.revision.toString())
          .setPosition(
            new streamsPb.AppendResp.Position()
              .setCommitPosition(outcome.position.toString())
              .setPreparePosition(outcome.position.toString()),
          ),
      );
    } else {
      const wrong = new streamsPb.AppendResp.WrongExpectedVersion();
      if (outcome.current === undefined) wrong.setCurrentNoStream(new sharedPb.Empty());
      else wrong.setCurrentRevision(outcome.current.toString());
      if (expected.kind === "revision") wrong.setExpectedRevision(expected.revision.toString());
      else if (expected.kind === "no_stream") wrong.setExpectedNoStream(new sharedPb.Empty());
      else if (expected.kind === "stream_exists") wrong.setExpectedStreamExists(new sharedPb.Empty());
      else wrong.setExpectedAny(new sharedPb.Empty());
      resp.setWrongExpectedVersion(wrong);
    }
    callback(null, resp);
  });
}

/**
 * Streams.BatchAppend: one long-lived bidirectional call; each request
 * carries a correlation id, the first chunk of an append carries its options
 * and the last is marked final. A conflict comes back as a google.rpc.Status
 * whose details pack event_store.client.WrongExpectedVersion.
 */
function handleBatchAppend(log: InMemoryLog, call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>): void {
  const pending = new Map<string, { options?: InstanceType<typeof streamsPb.BatchAppendReq.Options>; events: ProposedEvent[] }>();
  call.on("data", (req: BatchAppendReq) => {
    const correlation = fromUuid(req.getCorrelationId());
    const entry = pending.get(correlation) ?? { events: [] };
    pending.set(correlation, entry);
    if (req.hasOptions()) entry.options = req.getOptions();
    for (const message of req.getProposedMessagesList()) entry.events.push(proposedEvent(message));
    if (!req.getIsFinal()) return;
    pending.delete(correlation);
    if (!entry.options) {
      call.emit("error", { code: grpc.status.INVALID_ARGUMENT, details: "batch append without options" });
      return;
    }
    const stream = streamName(entry.options.getStreamIdentifier());
    const expected = expectedFromBatch(entry.options);
    const outcome = log.append(stream, entry.events, expected);

    const resp = new streamsPb.BatchAppendResp()
      .setCorrelationId(toUuid(correlation, false))
      .setStreamIdentifier(streamIdentifier(stream));
    if (expected.kind === "revision") resp.setStreamPosition(expected.revision.toString());
    else if (expected.kind === "no_stream") resp.setNoStream(new emptyPb.Empty());
    else if (expected.kind === "stream_exists") resp.setStreamExists(new emptyPb.Empty());
    else resp.setAny(new emptyPb.Empty());

    if (outcome.ok) {
      resp.setSuccess(
        new streamsPb.BatchAppendResp.Success()
          .setCurrentRevision(outcome.revision.toString())
          .setPosition(
            new sharedPb.AllStreamPosition()
              .setCommitPosition(outcome.position.toString())
              .setPreparePosition(outcome.position.toString()),
          ),
      );
    } else {
      const wrong = new sharedPb.WrongExpectedVersion();
      if (outcome.current === undefined) wrong.setCurrentNoStream(new emptyPb.Empty());
      else wrong.setCurrentStreamRevision(outcome.current.toString());
      if (expected.kind === "revision") wrong.setExpectedStreamPosition(expected.revision.toString());
      else if (expected.kind === "no_stream") wrong.setExpectedNoStream(new emptyPb.Empty());
      else if (expected.kind === "stream_exists") wrong.setExpectedStreamExists(new emptyPb.Empty());
      else wrong.setExpectedAny(new emptyPb.Empty());
      const details = new anyPb.Any();
      details.pack(wrong.serializeBinary(), "event_store.client.WrongExpectedVersion");
      resp.setError(
        new statusPb.Status()
          .setCode(RPC_CODE_FAILED_PRECONDITION)
          .setMessage("WrongExpectedVersion")
          .setDetails(details),
      );
    }
    call.write(resp);
  });
  call.on("end", () => call.end());
  call.on("error", () => undefined);
}

// ---------------------------------------------------------------- reads and subscriptions

/** One Read call: a bounded read, or a catch-up subscription when `subscription` is set. */
async function handleRead(
  log: InMemoryLog,
  registry: SubscriptionRegistry,
  call: grpc.ServerWritableStream<ReadReq, ReadResp>,
): Promise<void> {
  const options = call.request.getOptions();
  if (!options) throw new Error("read without options");
  const structuredIds = options.getUuidOption()?.hasStructured() ?? false;
  const send = (event: StoredEvent) => call.write(new streamsPb.ReadResp().setEvent(toReadEvent(event, structuredIds)));

  if (!options.hasSubscription()) {
    const result = options.hasStream() ? readStream(log, options) : readAll(log, options);
    if (result === "not_found") {
      const notFound = new streamsPb.ReadResp.StreamNotFound().setStreamIdentifier(
        options.getStream()!.getStreamIdentifier(),
      );
      call.write(new streamsPb.ReadResp().setStreamNotFound(notFound));
    } else {
      for (const event of result) {
        if (!send(event)) await drained(call);
      }
    }
    call.end();
    return;
  }

  await subscribe(log, registry, call, options, (event) => {
    registry.sent += 1;
    return send(event);
  });
}

function readStream(log: InMemoryLog, options: ReadOptions): StoredEvent[] | "not_found" {
  const streamOptions = options.getStream()!;
  const events = log.stream(streamName(streamOptions.getStreamIdentifier()));
  if (!events || events.length === 0) return "not_found";
  const count = Number(BigInt(options.getCount()));
  const last = BigInt(events.length - 1);
  if (options.getReadDirection() === streamsPb.ReadReq.Options.ReadDirection.FORWARDS) {
    const from = streamOptions.hasRevision() ? BigInt(streamOptions.getRevision()) : streamOptions.hasEnd() ? last + 1n : 0n;
    return from > last ? [] : events.slice(Number(from), Number(from) + count);
  }
  const from = streamOptions.hasRevision() ? BigInt(streamOptions.getRevision()) : streamOptions.hasStart() ? -1n : last;
  const top = Number(from > last ? last : from);
  return events.slice(Math.max(0, top - count + 1), top + 1).reverse();
}

/** $all reads: forwards from a position is inclusive, backwards is exclusive (it reads what lies before). */
function readAll(log: InMemoryLog, options: ReadOptions): StoredEvent[] {
  const allOptions = options.getAll()!;
  const count = Number(BigInt(options.getCount()));
  const position = allOptions.hasPosition() ? BigInt(allOptions.getPosition()!.getCommitPosition()) : undefined;
  if (options.getReadDirection() === streamsPb.ReadReq.Options.ReadDirection.FORWARDS) {
    const from = allOptions.hasEnd() ? log.all.length : position === undefined ? 0 : log.indexAfter(position - 1n);
    return log.all.slice(from, from + count);
  }
  const end = allOptions.hasStart() ? 0 : position === undefined ? log.all.length : log.indexAfter(position - 1n);
  return log.all.slice(Math.max(0, end - count), end).reverse();
}

/**
 * A catch-up subscription, as EventStoreDB 24.x runs it ("Catch-up
 * subscriptions", developers.eventstore.com/clients/grpc/subscriptions):
 * a confirmation first; then the events after the start point (revision or
 * position are exclusive); then `caught_up` (sent even for a stream that does
 * not exist yet since 24.2, kurrent-io/KurrentDB#4115); then live events.
 * Writes respect the call's flow control, so a slow client holds the server
 * back instead of growing a buffer.
 */
async function subscribe(
  log: InMemoryLog,
  { open: subscriptions }: SubscriptionRegistry,
  call: grpc.ServerWritableStream<ReadReq, ReadResp>,
  options: ReadOptions,
  send: (event: StoredEvent) => boolean,
): Promise<void> {
  let open = true;
  let wait: { cancel: () => void } | undefined;
  const subscription: OpenSubscription = {
    drop(code) {
      if (!open) return;
      close();
      call.emit("error", { code, details: "subscription dropped by the server" });
    },
  };
  const close = () => {
    open = false;
    subscriptions.delete(subscription);
    wait?.cancel();
  };
  subscriptions.add(subscription);
  call.on("cancelled", close);
  call.on("close", close);

  const next = cursor(log, options);
  call.write(
    new streamsPb.ReadResp().setConfirmation(
      new streamsPb.ReadResp.SubscriptionConfirmation().setSubscriptionId(randomUUID()),
    ),
  );
  let caughtUp = false;
  while (open) {
    for (let event = next(); event && open; event = next()) {
      if (!send(event)) await drained(call);
    }
    if (!open) return;
    if (!caughtUp) {
      caughtUp = true;
      call.write(new streamsPb.ReadResp().setCaughtUp(new streamsPb.ReadResp.CaughtUp()));
    }
    const append = log.nextAppend();
    wait = append;
    await append.promise;
  }
}

/** The subscription's position in the log: each call returns the next matching event, or undefined. */
function cursor(log: InMemoryLog, options: ReadOptions): () => StoredEvent | undefined {
  if (options.hasStream()) {
    const streamOptions = options.getStream()!;
    const name = streamName(streamOptions.getStreamIdentifier());
    let nextRevision = streamOptions.hasRevision()
      ? BigInt(streamOptions.getRevision()) + 1n
      : streamOptions.hasEnd()
        ? BigInt(log.stream(name)?.length ?? 0)
        : 0n;
    return () => {
      const event = log.stream(name)?.[Number(nextRevision)];
      if (event) nextRevision += 1n;
      return event;
    };
  }
  const allOptions = options.getAll()!;
  let index = allOptions.hasPosition()
    ? log.indexAfter(BigInt(allOptions.getPosition()!.getCommitPosition()))
    : allOptions.hasEnd()
      ? log.all.length
      : 0;
  const matches = filterFor(options);
  return () => {
    while (index < log.all.length) {
      const event = log.all[index++]!;
      if (matches(event)) return event;
    }
    return undefined;
  };
}

/**
 * Server-side filtering of $all ("Server-side filtering",
 * developers.eventstore.com/clients/grpc/subscriptions): by stream name or
 * event type, with prefixes or a regular expression. Checkpoints are not sent.
 */
function filterFor(options: ReadOptions): (event: StoredEvent) => boolean {
  if (!options.hasFilter()) return () => true;
  const filter = options.getFilter()!;
  const onStream = filter.hasStreamIdentifier();
  const expression = onStream ? filter.getStreamIdentifier()! : filter.getEventType()!;
  const prefixes = expression.getPrefixList();
  const regex = expression.getRegex() ? new RegExp(expression.getRegex()) : undefined;
  return (event) => {
    const subject = onStream ? event.stream : event.type;
    if (prefixes.length > 0 && !prefixes.some((prefix) => subject.startsWith(prefix))) return false;
    return regex ? regex.test(subject) : true;
  };
}

function toReadEvent(event: StoredEvent, structuredIds: boolean): InstanceType<typeof streamsPb.ReadResp.ReadEvent> {
  const recorded = new streamsPb.ReadResp.ReadEvent.RecordedEvent()
    .setId(toUuid(event.id, structuredIds))
    .setStreamIdentifier(streamIdentifier(event.stream))
    .setStreamRevision(event.revision.toString())
    .setCommitPosition(event.position.toString())
    .setPreparePosition(event.position.toString())
    .setData(event.data)
    .setCustomMetadata(event.metadata);
  recorded
    .getMetadataMap()
    .set("type", event.type)
    .set("content-type", event.contentType)
    .set("created", event.created.toString());
  return new streamsPb.ReadResp.ReadEvent().setEvent(recorded).setCommitPosition(event.position.toString());
}

function drained(call: grpc.ServerWritableStream<ReadReq, ReadResp>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      call.off("close", done);
      resolve();
    };
    call.on("drain", done);
    call.on("close", done);
  });
}
