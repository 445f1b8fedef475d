/**
 * A TEST DOUBLE of EventStoreDB 24.10: a gRPC server speaking EventStoreDB's
 * protocol (Streams.Read / Append / BatchAppend / Delete / Tombstone and
 * ServerFeatures), built on the service definitions `@eventstore/db-client`
 * ships, with in-memory storage. It lets the EsdbEventStore adapter be tested
 * through the real client library without a database. It is never a store
 * the server can use.
 *
 * What it models, each with its source, is listed in docs/eventstoredb.md:
 * `$all` starting with a fresh node's system events and another
 * application's streams; stream metadata applied on reads; soft delete and
 * tombstone; the 1 MiB append limit; deadlines and write timeouts with an
 * outcome the client cannot know; checkpoints on filtered `$all`
 * subscriptions; and, in secure mode, TLS, users (admin and ops, password
 * changeit) and ACLs, with `$all` readable only by `$admins` and `$ops`.
 * As a member of a cluster (`cluster.ts`), it also serves Gossip and answers
 * `requires-leader` calls with not-leader while it is a follower.
 * Everything else EventStoreDB serves (persistent subscriptions, projections,
 * users, operations, the HTTP API; gossip on a single node) is not
 * registered, so a call answers UNIMPLEMENTED.
 *
 * Fault hooks simulate what a real deployment does to a client: dropping
 * subscriptions, the whole store going away and coming back on the same port
 * (pause/resume), and slow writes (commitDelay).
 */
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import {
  DELETED_STREAM,
  InMemoryLog,
  type Acl,
  type AppendOutcome,
  type Expected,
  type ProposedEvent,
  type StoredEvent,
} from "./log.js";
import {
  anyPb,
  emptyPb,
  fromUuid,
  gossipGrpc,
  gossipPb,
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
import { seedFreshNode, writeForeignEvents, writeStats } from "./seed.js";

type ReadReq = InstanceType<typeof streamsPb.ReadReq>;
type ReadResp = InstanceType<typeof streamsPb.ReadResp>;
type ReadOptions = InstanceType<typeof streamsPb.ReadReq.Options>;
type AppendReq = InstanceType<typeof streamsPb.AppendReq>;
type AppendResp = InstanceType<typeof streamsPb.AppendResp>;
type BatchAppendReq = InstanceType<typeof streamsPb.BatchAppendReq>;
type BatchAppendResp = InstanceType<typeof streamsPb.BatchAppendResp>;
type DeleteReq = InstanceType<typeof streamsPb.DeleteReq>;
type TombstoneReq = InstanceType<typeof streamsPb.TombstoneReq>;

/** ClusterVNodeOptions.Database.MaxAppendSize: 1 MiB. */
export const DEFAULT_MAX_APPEND_SIZE = 1_048_576;
/** ClusterVNodeOptions.Database.WriteTimeoutMs. */
export const DEFAULT_WRITE_TIMEOUT_MS = 2_000;
/** The default user password of a fresh node. */
export const DEFAULT_PASSWORD = "changeit";

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
  /**
   * A secure node: TLS with this key and certificate (signed by `caFile`),
   * authentication and ACLs. Without it the node runs as `--insecure`: no
   * TLS, and neither authentication nor authorization.
   */
  secure?: { key: Buffer; cert: Buffer; caFile: string };
  /** Users beside the defaults `admin` ($admins) and `ops` ($ops), both with password `changeit`. */
  users?: Record<string, { password: string; groups?: string[] }>;
  /** Start `$all` with a fresh node's system events and another application's streams (default true). */
  seed?: boolean;
  /** Bytes (data + metadata + 2 × type length per event) one append may carry (default 1 MiB). */
  maxAppendSize?: number;
  /** How long a published write may take before the server answers Timeout (default 2 s). */
  writeTimeoutMs?: number;
  /** Storage shared with other nodes of a cluster (default: a log of its own). */
  log?: InMemoryLog;
  /** Membership of a cluster (see cluster.ts): serves Gossip and follows the cluster's leader. */
  cluster?: ClusterMembership;
}

/** What a cluster node needs to know about its cluster, asked at every call (leadership moves). */
export interface ClusterMembership {
  /** The leader's address as gossip advertises it, or undefined while there is none. */
  leader(): { host: string; port: number } | undefined;
  /** Whether this node (on `port`) leads right now. */
  isLeader(port: number): boolean;
  /** The Gossip.Read answer: every member with its state, liveness and endpoint. */
  gossip(): InstanceType<typeof gossipPb.ClusterInfo>;
}

/**
 * A store that commits slowly: each write takes `ms`. When that exceeds the
 * write timeout, the client gets Timeout / DeadlineExceeded and the write is
 * `written` anyway or `lost`, which the client cannot tell apart.
 */
export interface CommitDelay {
  ms: number;
  lateWrites: "written" | "lost";
}

export interface EsdbDouble {
  /** For the default user: `esdb://127.0.0.1:<port>?tls=false`, or `esdb://admin:changeit@…?tls=true&tlsCAFile=…` when secure. */
  readonly connectionString: string;
  /** A connection string with other credentials (or none); only meaningful for a secure double. */
  connectionStringFor(user?: { username: string; password: string }): string;
  readonly port: number;
  /** Everything in `$all` so far, in log order (for assertions), system events included. */
  readonly events: readonly StoredEvent[];
  /** The double's storage, for tests that arrange state (e.g. move the clock past `$maxAge`). */
  readonly log: InMemoryLog;
  /** Number of subscription calls open right now. */
  activeSubscriptions(): number;
  /** Events written to subscription calls so far (flow control holds writes back from a slow reader). */
  sentEvents(): number;
  /** Checkpoints sent on filtered `$all` subscriptions so far. */
  sentCheckpoints(): number;
  /** Not-leader answers this node gave so far (cluster mode). */
  notLeaderAnswers(): number;
  /** End every open subscription call with `code` (default UNAVAILABLE), as a server restart or leader change does. */
  dropSubscriptions(code?: grpc.status): void;
  /** Slow down (or, with undefined, speed up again) every write from now on. */
  commitDelay(delay: CommitDelay | undefined): void;
  /** What a live node and its neighbours add to `$all` meanwhile: a stats event and another application's events. */
  writeBackgroundEvents(): void;
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

interface User {
  login: string;
  groups: string[];
}

/** What every call handler shares. */
interface Node {
  log: InMemoryLog;
  subscriptions: Set<OpenSubscription>;
  counters: { sent: number; checkpoints: number; notLeader: number };
  batchAppend: boolean;
  secure: boolean;
  users: Map<string, { password: string; groups: string[] }>;
  maxAppendSize: number;
  writeTimeoutMs: number;
  delay: CommitDelay | undefined;
  cluster: ClusterMembership | undefined;
  /** This node's port (the cluster asks whether it leads by it). */
  port(): number;
}

export async function startEsdbDouble(options: EsdbDoubleOptions = {}): Promise<EsdbDouble> {
  const log = options.log ?? new InMemoryLog();
  const users = new Map<string, { password: string; groups: string[] }>([
    ["admin", { password: DEFAULT_PASSWORD, groups: ["$admins"] }],
    ["ops", { password: DEFAULT_PASSWORD, groups: ["$ops"] }],
  ]);
  for (const [login, user] of Object.entries(options.users ?? {})) users.set(login, { password: user.password, groups: user.groups ?? [] });
  const node: Node = {
    log,
    subscriptions: new Set(),
    counters: { sent: 0, checkpoints: 0, notLeader: 0 },
    batchAppend: options.batchAppend ?? true,
    secure: options.secure !== undefined,
    users,
    maxAppendSize: options.maxAppendSize ?? DEFAULT_MAX_APPEND_SIZE,
    writeTimeoutMs: options.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS,
    delay: undefined,
    cluster: options.cluster,
    port: () => port,
  };
  const nodeName = () => `127.0.0.1:${port}`;
  let server: grpc.Server | undefined;
  let port = options.port ?? 0;
  const credentials = options.secure
    ? grpc.ServerCredentials.createSsl(null, [{ private_key: options.secure.key, cert_chain: options.secure.cert }], false)
    : grpc.ServerCredentials.createInsecure();

  const listen = async (): Promise<void> => {
    const next = createServer(node);
    port = await new Promise<number>((resolve, reject) => {
      next.bindAsync(`127.0.0.1:${port}`, credentials, (error, bound) => (error ? reject(error) : resolve(bound)));
    });
    server = next;
  };
  const shutdown = (): void => {
    for (const subscription of [...node.subscriptions]) subscription.drop(grpc.status.UNAVAILABLE);
    server?.forceShutdown();
    server = undefined;
  };
  const connectionStringFor = (user?: { username: string; password: string }): string => {
    if (!options.secure) return `esdb://127.0.0.1:${port}?tls=false`;
    const login = user ? `${encodeURIComponent(user.username)}:${encodeURIComponent(user.password)}@` : "";
    return `esdb://${login}127.0.0.1:${port}?tls=true&tlsCAFile=${encodeURIComponent(options.secure.caFile)}`;
  };

  await listen();
  if (options.seed ?? true) seedFreshNode(log, nodeName());
  return {
    get connectionString() {
      return connectionStringFor({ username: "admin", password: DEFAULT_PASSWORD });
    },
    connectionStringFor,
    get port() {
      return port;
    },
    events: log.all,
    log,
    activeSubscriptions: () => node.subscriptions.size,
    sentEvents: () => node.counters.sent,
    sentCheckpoints: () => node.counters.checkpoints,
    notLeaderAnswers: () => node.counters.notLeader,
    dropSubscriptions(code = grpc.status.UNAVAILABLE) {
      for (const subscription of [...node.subscriptions]) subscription.drop(code);
    },
    commitDelay(delay) {
      node.delay = delay;
    },
    writeBackgroundEvents() {
      writeStats(log, nodeName());
      writeForeignEvents(log);
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

function createServer(node: Node): grpc.Server {
  const server = new grpc.Server();
  // Every handler is wrapped: a bug in the double answers INTERNAL instead of crashing the test process.
  const streams: grpc.UntypedServiceImplementation = {
    read: (call: grpc.ServerWritableStream<ReadReq, ReadResp>) => {
      const user = authenticate(node, call.metadata);
      if (user === "bad") return call.emit("error", badLogin());
      const redirect = notLeader(node, call.metadata);
      if (redirect) return call.emit("error", redirect);
      handleRead(node, user, call).catch((error: unknown) => call.emit("error", asServiceError(error)));
    },
    append: (call: grpc.ServerReadableStream<AppendReq, AppendResp>, callback: grpc.sendUnaryData<AppendResp>) => {
      const user = authenticate(node, call.metadata);
      if (user === "bad") return callback(badLogin());
      const redirect = notLeader(node, call.metadata);
      if (redirect) return callback(redirect);
      handleAppend(node, user, call, callback);
    },
    batchAppend: (call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>) => {
      const user = authenticate(node, call.metadata);
      if (user === "bad") return call.emit("error", badLogin());
      handleBatchAppend(node, user, call);
    },
    delete: (call: grpc.ServerUnaryCall<DeleteReq, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const redirect = notLeader(node, call.metadata);
      if (redirect) return callback(redirect);
      handleDelete(node, call, callback, "delete");
    },
    tombstone: (call: grpc.ServerUnaryCall<TombstoneReq, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const redirect = notLeader(node, call.metadata);
      if (redirect) return callback(redirect);
      handleDelete(node, call, callback, "tombstone");
    },
  };
  server.addService(streamsGrpc.StreamsService, streams);
  const cluster = node.cluster;
  if (cluster) {
    // Gossip.Read (Gossip.Read.cs): the client asks it without credentials to find a node it prefers.
    server.addService(gossipGrpc.GossipService, {
      read: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, cluster.gossip()),
    });
  }
  if (node.batchAppend) {
    server.addService(serverFeaturesGrpc.ServerFeaturesService, {
      getSupportedMethods: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => {
        const method = (service: string, name: string) =>
          new serverFeaturesPb.SupportedMethod().setServiceName(service).setMethodName(name);
        const streamsService = "event_store.client.streams.Streams";
        callback(
          null,
          new serverFeaturesPb.SupportedMethods()
            .setEventStoreServerVersion("24.10.0-double")
            .setMethodsList(["Read", "Append", "BatchAppend", "Delete", "Tombstone"].map((name) => method(streamsService, name))),
        );
      },
    });
  }
  return server;
}

// ---------------------------------------------------------------- authentication and ACLs

/**
 * The caller, from HTTP Basic credentials (the client sends them as
 * `authorization` metadata on TLS connections only). Undefined: anonymous;
 * "bad": unknown user or wrong password, which EventStoreDB answers with
 * 401, i.e. UNAUTHENTICATED (the client's AccessDeniedError).
 */
function authenticate(node: Node, metadata: grpc.Metadata): User | undefined | "bad" {
  if (!node.secure) return undefined;
  const header = metadata.get("authorization")[0]?.toString();
  if (!header) return undefined;
  const match = /^Basic (.+)$/.exec(header);
  if (!match) return "bad";
  const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  const login = decoded.slice(0, colon);
  const known = node.users.get(login);
  if (colon < 0 || !known || known.password !== decoded.slice(colon + 1)) return "bad";
  return { login, groups: known.groups };
}

type StreamOperation = "$r" | "$w" | "$d";

/**
 * EventStoreDB's default authorization policy: `$admins` may do anything;
 * reading `$all` needs `$admins` or `$ops`; a stream's own `$acl` decides,
 * else the default ACL (user streams: `$all`, i.e. every authenticated user;
 * `$`-streams: `$admins`). A `$$` metadata stream is governed by its
 * stream's `$mr` / `$mw`. Anonymous callers get no stream access (24.10
 * defaults). Insecure nodes authorize everything.
 */
function allowed(node: Node, user: User | undefined, operation: StreamOperation, stream: string | "$all"): boolean {
  if (!node.secure) return true;
  if (!user) return false;
  if (user.groups.includes("$admins")) return true;
  if (stream === "$all") return user.groups.includes("$ops");
  let key: keyof Acl = operation;
  let target = stream;
  if (stream.startsWith("$$")) {
    target = stream.slice(2);
    key = operation === "$r" ? "$mr" : "$mw";
  }
  const configured = node.log.metadata(target).$acl?.[key];
  const roles = configured === undefined ? [target.startsWith("$") ? "$admins" : "$all"] : [configured].flat();
  return roles.some((role) => role === "$all" || role === user.login || user.groups.includes(role));
}

/**
 * A follower asked for the leader (`requires-leader: true`, what the client
 * sends for `requiresLeader`): EventStoreDB's ClusterVNodeController denies
 * reads, writes and deletes (DenyRequestBecauseNotLeader) and the gRPC layer
 * answers RpcExceptions.LeaderInfo: NOT_FOUND "Leader info available" with
 * `exception: not-leader` and the leader's advertised HTTP endpoint, which
 * the client's NotLeaderError reads to reconnect there. With no leader known
 * it answers NotReady (UNAVAILABLE "Server Is Not Ready"). Without the header
 * a follower serves reads itself and forwards writes to the leader; here the
 * log is shared, so both simply happen.
 */
function notLeader(node: Node, metadata: grpc.Metadata): Partial<grpc.ServiceError> | undefined {
  if (!node.cluster || node.cluster.isLeader(node.port())) return undefined;
  if (metadata.get("requires-leader")[0]?.toString().toLowerCase() !== "true") return undefined;
  const leader = node.cluster.leader();
  if (!leader) return { code: grpc.status.UNAVAILABLE, details: "Server Is Not Ready" };
  node.counters.notLeader += 1;
  return rpcException(grpc.status.NOT_FOUND, "Leader info available", {
    exception: "not-leader",
    "leader-endpoint-host": leader.host,
    "leader-endpoint-port": String(leader.port),
  });
}

function badLogin(): Partial<grpc.ServiceError> {
  return { code: grpc.status.UNAUTHENTICATED, details: "Bad Request: invalid credentials" };
}

// ---------------------------------------------------------------- errors as EventStoreDB sends them

/** RpcExceptions in EventStoreDB: a status plus `exception` metadata the client maps to its error classes. */
function rpcException(code: grpc.status, details: string, entries: Record<string, string>): Partial<grpc.ServiceError> {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(entries)) metadata.set(key, value);
  return { code, details, metadata };
}

const accessDenied = () => rpcException(grpc.status.PERMISSION_DENIED, "Access Denied", { exception: "access-denied" });
const streamDeleted = (stream: string) =>
  rpcException(grpc.status.FAILED_PRECONDITION, `Event stream '${stream}' is deleted.`, { exception: "stream-deleted", "stream-name": stream });
const maxAppendSizeExceeded = (size: number) =>
  rpcException(grpc.status.INVALID_ARGUMENT, `Maximum Append Size of ${size} Exceeded.`, {
    exception: "maximum-append-size-exceeded",
    "maximum-append-size": String(size),
  });
/** The `expected-version` EventStoreDB reports: a revision, or -1 no_stream, -2 any, -4 stream_exists. */
const expectedVersion = (expected: Expected): string =>
  expected.kind === "revision" ? expected.revision.toString() : { no_stream: "-1", any: "-2", stream_exists: "-4" }[expected.kind];
const wrongExpectedVersion = (operation: string, stream: string, expected: Expected, actual: bigint | undefined) =>
  rpcException(
    grpc.status.FAILED_PRECONDITION,
    `${operation} failed due to WrongExpectedVersion. Stream: ${stream}, Expected version: ${expectedVersion(expected)}, Actual version: ${actual ?? ""}`,
    {
      exception: "wrong-expected-version",
      "stream-name": stream,
      "expected-version": expectedVersion(expected),
      "actual-version": actual?.toString() ?? "",
    },
  );

function asServiceError(error: unknown): Partial<grpc.ServiceError> {
  if (error !== null && typeof error === "object" && "code" in error) return error as Partial<grpc.ServiceError>;
  return { code: grpc.status.INTERNAL, details: String(error) };
}

/** google.rpc.Code values EventStoreDB puts in BatchAppendResp.error (Status.* in its Google.Rpc partial class). */
const RPC_CODE = { INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7 } as const;

function rpcStatus(code: number, message: string, detail: { serializeBinary(): Uint8Array }, typeName: string) {
  const details = new anyPb.Any();
  details.pack(detail.serializeBinary(), typeName);
  return new statusPb.Status().setCode(code).setMessage(message).setDetails(details);
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

/** Event.SizeOnDisk in EventStoreDB: what counts toward MaxAppendSize. */
const sizeOnDisk = (event: ProposedEvent): number => event.data.length + event.metadata.length + event.type.length * 2;

/**
 * A published write: committed after the configured delay. `answer` gets
 * the outcome, or "timeout" once the write timeout passes first; a write
 * that outlives its timeout is still written, or lost, as configured.
 */
function commit(node: Node, write: () => AppendOutcome, answer: (outcome: AppendOutcome | "timeout") => void): void {
  const delay = node.delay;
  if (!delay || delay.ms <= 0) return answer(write());
  let answered = false;
  const timeout = setTimeout(() => {
    answered = true;
    answer("timeout");
  }, node.writeTimeoutMs);
  setTimeout(() => {
    if (!answered) {
      clearTimeout(timeout);
      return answer(write());
    }
    if (delay.lateWrites === "written") write();
  }, delay.ms);
}

/** Streams.Append: an options message, then one message per event; one response. */
function handleAppend(
  node: Node,
  user: User | undefined,
  call: grpc.ServerReadableStream<AppendReq, AppendResp>,
  callback: grpc.sendUnaryData<AppendResp>,
): void {
  let stream: string | undefined;
  let expected: Expected = { kind: "any" };
  const proposed: ProposedEvent[] = [];
  let size = 0;
  let failed = false;
  const fail = (error: Partial<grpc.ServiceError>) => {
    if (failed) return;
    failed = true;
    callback(error);
  };
  call.on("data", (req: AppendReq) => {
    if (failed) return;
    try {
      if (req.hasOptions()) {
        stream = streamName(req.getOptions()!.getStreamIdentifier());
        expected = expectedFromAppend(req.getOptions()!);
        if (!allowed(node, user, "$w", stream)) fail(accessDenied());
      } else if (req.hasProposedMessage()) {
        const event = proposedEvent(req.getProposedMessage()!);
        size += sizeOnDisk(event);
        if (size > node.maxAppendSize) return fail(maxAppendSizeExceeded(node.maxAppendSize));
        proposed.push(event);
      }
    } catch (error) {
      fail({ code: grpc.status.INVALID_ARGUMENT, details: String(error) });
    }
  });
  call.on("end", () => {
    if (failed) return;
    if (stream === undefined) return fail({ code: grpc.status.INVALID_ARGUMENT, details: "append without options" });
    const name = stream;
    commit(
      node,
      () => node.log.append(name, proposed, expected),
      (outcome) => {
        if (call.cancelled) return; // past the call's deadline: the client already has DEADLINE_EXCEEDED
        if (outcome === "timeout") return fail({ code: grpc.status.ABORTED, details: "Operation timed out: Append timed out" });
        if (!outcome.ok && "deleted" in outcome) return fail(streamDeleted(name));
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
      },
    );
  });
}

interface PendingBatch {
  stream: string;
  expected: Expected;
  events: ProposedEvent[];
  size: number;
  /** Set when the client's deadline passed before the last chunk arrived. */
  timer: NodeJS.Timeout | undefined;
}

/**
 * Streams.BatchAppend, as Streams.BatchAppend.cs in EventStoreDB runs it:
 * one long-lived bidirectional call; each request carries a correlation id,
 * the first chunk of an append its options (with the client's deadline) and
 * the last is marked final. The deadline bounds the wait for the whole
 * append to arrive (a deadline already past: Timeout at once); once the
 * final chunk is in, the write is published and its own write timeout
 * applies. Access is checked on the options, the size on every chunk.
 * Failures come back as a google.rpc.Status whose details say which.
 */
function handleBatchAppend(node: Node, user: User | undefined, call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>): void {
  const pending = new Map<string, PendingBatch>();
  let ended = false;
  const respond = (correlation: string, stream: string, build: (resp: BatchAppendResp) => void) => {
    const resp = new streamsPb.BatchAppendResp().setCorrelationId(toUuid(correlation, false)).setStreamIdentifier(streamIdentifier(stream));
    build(resp);
    if (!ended && !call.destroyed) call.write(resp);
  };
  const failWith = (correlation: string, stream: string, status: InstanceType<typeof statusPb.Status>) =>
    respond(correlation, stream, (resp) => resp.setError(status));
  const timeoutStatus = () => rpcStatus(RPC_CODE.DEADLINE_EXCEEDED, "Timeout", new sharedPb.Timeout(), "event_store.client.Timeout");

  call.on("data", (req: BatchAppendReq) => {
    if (ended) return;
    const correlation = fromUuid(req.getCorrelationId());
    if (req.hasOptions()) {
      const options = req.getOptions()!;
      const stream = streamName(options.getStreamIdentifier());
      if (!allowed(node, user, "$w", stream)) {
        return failWith(correlation, stream, rpcStatus(RPC_CODE.PERMISSION_DENIED, "AccessDenied", new sharedPb.AccessDenied(), "event_store.client.AccessDenied"));
      }
      const requested = options.hasDeadline() ? options.getDeadline()!.toDate().getTime() - Date.now() : Infinity;
      const timeout = Math.min(requested, node.writeTimeoutMs);
      if (timeout <= 0) return failWith(correlation, stream, timeoutStatus());
      const entry: PendingBatch = { stream, expected: expectedFromBatch(options), events: [], size: 0, timer: undefined };
      entry.timer = setTimeout(() => {
        if (pending.get(correlation) !== entry) return;
        pending.delete(correlation);
        failWith(correlation, stream, timeoutStatus());
      }, timeout);
      pending.set(correlation, entry);
    }
    const entry = pending.get(correlation);
    if (!entry) return; // refused or timed out already: the rest of that append is ignored
    try {
      for (const message of req.getProposedMessagesList()) {
        const event = proposedEvent(message);
        entry.size += sizeOnDisk(event);
        entry.events.push(event);
      }
    } catch (error) {
      pending.delete(correlation);
      clearTimeout(entry.timer);
      const badRequest = new sharedPb.BadRequest().setMessage(String(error));
      return failWith(correlation, entry.stream, rpcStatus(RPC_CODE.INVALID_ARGUMENT, "BadRequest", badRequest, "event_store.client.BadRequest"));
    }
    if (entry.size > node.maxAppendSize) {
      pending.delete(correlation);
      clearTimeout(entry.timer);
      const exceeded = new sharedPb.MaximumAppendSizeExceeded().setMaxappendsize(node.maxAppendSize);
      return failWith(
        correlation,
        entry.stream,
        rpcStatus(RPC_CODE.INVALID_ARGUMENT, "MaximumAppendSizeExceeded", exceeded, "event_store.client.MaximumAppendSizeExceeded"),
      );
    }
    if (!req.getIsFinal()) return;
    pending.delete(correlation);
    clearTimeout(entry.timer);
    // A write published on a follower: the not-leader exception ends the whole
    // call (Streams.BatchAppend.cs throws RpcExceptions.LeaderInfo inside the
    // write's callback, which completes the response channel with it), so
    // every append still waiting on this call fails with it too.
    const redirect = notLeader(node, call.metadata);
    if (redirect) {
      for (const other of pending.values()) clearTimeout(other.timer);
      pending.clear();
      ended = true;
      return call.emit("error", redirect);
    }
    const { stream, expected } = entry;
    commit(
      node,
      () => node.log.append(stream, entry.events, expected),
      (outcome) =>
        respond(correlation, stream, (resp) => {
          if (expected.kind === "revision") resp.setStreamPosition(expected.revision.toString());
          else if (expected.kind === "no_stream") resp.setNoStream(new emptyPb.Empty());
          else if (expected.kind === "stream_exists") resp.setStreamExists(new emptyPb.Empty());
          else resp.setAny(new emptyPb.Empty());
          if (outcome === "timeout") return resp.setError(timeoutStatus());
          if (outcome.ok) {
            return resp.setSuccess(
              new streamsPb.BatchAppendResp.Success()
                .setCurrentRevision(outcome.revision.toString())
                .setPosition(
                  new sharedPb.AllStreamPosition()
                    .setCommitPosition(outcome.position.toString())
                    .setPreparePosition(outcome.position.toString()),
                ),
            );
          }
          if ("deleted" in outcome) {
            const deleted = new sharedPb.StreamDeleted().setStreamIdentifier(streamIdentifier(stream));
            return resp.setError(rpcStatus(RPC_CODE.NOT_FOUND, "StreamDeleted", deleted, "event_store.client.StreamDeleted"));
          }
          const wrong = new sharedPb.WrongExpectedVersion();
          if (outcome.current === undefined) wrong.setCurrentNoStream(new emptyPb.Empty());
          else wrong.setCurrentStreamRevision(outcome.current.toString());
          if (expected.kind === "revision") wrong.setExpectedStreamPosition(expected.revision.toString());
          else if (expected.kind === "no_stream") wrong.setExpectedNoStream(new emptyPb.Empty());
          else if (expected.kind === "stream_exists") wrong.setExpectedStreamExists(new emptyPb.Empty());
          else wrong.setExpectedAny(new emptyPb.Empty());
          resp.setError(rpcStatus(RPC_CODE.ALREADY_EXISTS, "WrongExpectedVersion", wrong, "event_store.client.WrongExpectedVersion"));
        }),
    );
  });
  call.on("end", () => call.end());
  call.on("error", () => undefined);
  call.on("close", () => {
    for (const entry of pending.values()) clearTimeout(entry.timer);
  });
}

/**
 * Streams.Delete (soft) and Streams.Tombstone, with the expected revision
 * checked as for appends: WrongExpectedVersion or StreamDeleted as
 * RpcExceptions; the response carries the position of the record written.
 */
function handleDelete(
  node: Node,
  call: grpc.ServerUnaryCall<DeleteReq | TombstoneReq, unknown>,
  callback: grpc.sendUnaryData<unknown>,
  kind: "delete" | "tombstone",
): void {
  const user = authenticate(node, call.metadata);
  if (user === "bad") return callback(badLogin());
  const options = call.request.getOptions();
  if (!options) return callback({ code: grpc.status.INVALID_ARGUMENT, details: "delete without options" });
  const stream = streamName(options.getStreamIdentifier());
  if (!allowed(node, user, "$d", stream)) return callback(accessDenied());
  const expected: Expected = options.hasRevision()
    ? { kind: "revision", revision: BigInt(options.getRevision()) }
    : options.hasNoStream()
      ? { kind: "no_stream" }
      : options.hasStreamExists()
        ? { kind: "stream_exists" }
        : { kind: "any" };
  const outcome = kind === "delete" ? node.log.softDelete(stream, expected) : node.log.tombstone(stream, expected);
  if (!outcome.ok) {
    if ("deleted" in outcome) return callback(streamDeleted(stream));
    return callback(wrongExpectedVersion(kind === "delete" ? "Delete" : "Tombstone", stream, expected, outcome.current));
  }
  const Resp = kind === "delete" ? streamsPb.DeleteResp : streamsPb.TombstoneResp;
  const position = new Resp.Position().setCommitPosition(outcome.position.toString()).setPreparePosition(outcome.position.toString());
  callback(null, new Resp().setPosition(position));
}

// ---------------------------------------------------------------- reads and subscriptions

/** One Read call: a bounded read, or a catch-up subscription when `subscription` is set. */
async function handleRead(node: Node, user: User | undefined, call: grpc.ServerWritableStream<ReadReq, ReadResp>): Promise<void> {
  const options = call.request.getOptions();
  if (!options) throw { code: grpc.status.INVALID_ARGUMENT, details: "read without options" };
  const target = options.hasStream() ? streamName(options.getStream()!.getStreamIdentifier()) : "$all";
  if (!allowed(node, user, "$r", target)) throw accessDenied();
  const structuredIds = options.getUuidOption()?.hasStructured() ?? false;
  const send = (event: StoredEvent) => call.write(new streamsPb.ReadResp().setEvent(toReadEvent(event, structuredIds)));

  if (!options.hasSubscription()) {
    const result = options.hasStream() ? readStream(node.log, options) : readAll(node.log, options);
    if (result === "deleted") throw streamDeleted(target);
    if (result === "not_found") {
      const notFound = new streamsPb.ReadResp.StreamNotFound().setStreamIdentifier(options.getStream()!.getStreamIdentifier());
      call.write(new streamsPb.ReadResp().setStreamNotFound(notFound));
    } else {
      for (const event of result) {
        if (!send(event)) await drained(call);
      }
    }
    call.end();
    return;
  }

  await subscribe(node, call, options, (item) => {
    if ("checkpoint" in item) {
      node.counters.checkpoints += 1;
      const position = item.checkpoint.toString();
      return call.write(new streamsPb.ReadResp().setCheckpoint(new streamsPb.ReadResp.Checkpoint().setCommitPosition(position).setPreparePosition(position)));
    }
    node.counters.sent += 1;
    return send(item);
  });
}

function readStream(log: InMemoryLog, options: ReadOptions): StoredEvent[] | "not_found" | "deleted" {
  const streamOptions = options.getStream()!;
  const view = log.view(streamName(streamOptions.getStreamIdentifier()));
  if (view.status === "deleted") return "deleted";
  if (view.status === "no_stream") return "not_found";
  const events = view.events;
  const count = Number(BigInt(options.getCount()));
  const forwards = options.getReadDirection() === streamsPb.ReadReq.Options.ReadDirection.FORWARDS;
  if (forwards) {
    const from = streamOptions.hasRevision() ? BigInt(streamOptions.getRevision()) : streamOptions.hasEnd() ? DELETED_STREAM : 0n;
    return events.filter((e) => e.revision >= from).slice(0, count);
  }
  const from = streamOptions.hasRevision() ? BigInt(streamOptions.getRevision()) : streamOptions.hasStart() ? -1n : DELETED_STREAM;
  return events
    .filter((e) => e.revision <= from)
    .reverse()
    .slice(0, count);
}

/** $all reads: forwards from a position is inclusive, backwards is exclusive (it reads what lies before). */
function readAll(log: InMemoryLog, options: ReadOptions): StoredEvent[] {
  const allOptions = options.getAll()!;
  const count = Number(BigInt(options.getCount()));
  const position = allOptions.hasPosition() ? BigInt(allOptions.getPosition()!.getCommitPosition()) : undefined;
  const matches = filterFor(options);
  const pick = (events: StoredEvent[]) => events.filter(matches).slice(0, count);
  if (options.getReadDirection() === streamsPb.ReadReq.Options.ReadDirection.FORWARDS) {
    const from = allOptions.hasEnd() ? log.all.length : position === undefined ? 0 : log.indexAfter(position - 1n);
    return pick(log.all.slice(from));
  }
  const end = allOptions.hasStart() ? 0 : position === undefined ? log.all.length : log.indexAfter(position - 1n);
  return pick(log.all.slice(0, end).reverse());
}

type SubscriptionItem = StoredEvent | { checkpoint: bigint };

/**
 * A catch-up subscription, as EventStoreDB 24.x runs it ("Catch-up
 * subscriptions", developers.eventstore.com/clients/grpc/subscriptions):
 * a confirmation first; then the events after the start point (revision or
 * position are exclusive); then `caught_up` (sent even for a stream that does
 * not exist yet since 24.2, kurrent-io/KurrentDB#4115); then live events.
 * A tombstoned stream ends the subscription with StreamDeleted. Writes
 * respect the call's flow control, so a slow client holds the server back
 * instead of growing a buffer.
 */
async function subscribe(
  node: Node,
  call: grpc.ServerWritableStream<ReadReq, ReadResp>,
  options: ReadOptions,
  send: (item: SubscriptionItem) => boolean,
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
    node.subscriptions.delete(subscription);
    wait?.cancel();
  };
  node.subscriptions.add(subscription);
  call.on("cancelled", close);
  call.on("close", close);

  const next = cursor(node.log, options);
  call.write(
    new streamsPb.ReadResp().setConfirmation(new streamsPb.ReadResp.SubscriptionConfirmation().setSubscriptionId(randomUUID())),
  );
  let caughtUp = false;
  while (open) {
    for (let item = next(); item && open; item = next()) {
      if (item === "deleted") {
        close();
        call.emit("error", streamDeleted(streamName(options.getStream()!.getStreamIdentifier())));
        return;
      }
      if (!send(item)) await drained(call);
    }
    if (!open) return;
    if (!caughtUp) {
      caughtUp = true;
      call.write(new streamsPb.ReadResp().setCaughtUp(new streamsPb.ReadResp.CaughtUp()));
    }
    const append = node.log.nextAppend();
    wait = append;
    await append.promise;
  }
}

/** Checkpoints come every `window × multiplier` events scanned; the gRPC default window is 32 (EventStore/EventStore#2608). */
const DEFAULT_SEARCH_WINDOW = 32;

/** The subscription's position in the log: each call returns the next item to send, or undefined. */
function cursor(log: InMemoryLog, options: ReadOptions): () => SubscriptionItem | "deleted" | undefined {
  if (options.hasStream()) {
    const streamOptions = options.getStream()!;
    const name = streamName(streamOptions.getStreamIdentifier());
    let nextRevision = streamOptions.hasRevision()
      ? BigInt(streamOptions.getRevision()) + 1n
      : streamOptions.hasEnd()
        ? BigInt(log.stream(name)?.length ?? 0)
        : 0n;
    return () => {
      const view = log.view(name);
      if (view.status === "deleted") return "deleted";
      if (view.status === "no_stream") return undefined;
      // Events hidden by the stream's metadata are skipped, as a read would.
      const event = view.events.find((e) => e.revision >= nextRevision);
      if (event) nextRevision = event.revision + 1n;
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
  const filter = options.hasFilter() ? options.getFilter()! : undefined;
  const interval = filter
    ? (filter.hasMax() ? filter.getMax() : DEFAULT_SEARCH_WINDOW) * Math.max(1, filter.getCheckpointintervalmultiplier())
    : Infinity;
  let scanned = 0;
  return () => {
    while (index < log.all.length) {
      const event = log.all[index++]!;
      scanned += 1;
      if (matches(event)) return event;
      // Only events the filter skipped lead to a checkpoint here; a delivered event carries its own position.
      if (scanned >= interval) {
        scanned = 0;
        return { checkpoint: event.position };
      }
    }
    return undefined;
  };
}

/**
 * Server-side filtering of $all ("Server-side filtering",
 * developers.eventstore.com/clients/grpc/subscriptions): by stream name or
 * event type, with prefixes or a regular expression.
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

