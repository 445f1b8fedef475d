/** The composition root: config -> store -> application -> gRPC server. */
import type { Logger } from "pino";
import { AccountCommandHandler } from "./app/account-command-handler.js";
import { AccountQueries } from "./app/account-queries.js";
import type { Config } from "./config.js";
import { authenticate } from "./grpc/auth.js";
import { ACCOUNT_SERVICE_NAME, startGrpcServer, type RunningServer } from "./grpc/grpc-server.js";
import { serverCredentials } from "./grpc/server-credentials.js";
import { SubscriptionLimit } from "./grpc/subscription-limit.js";
import type { EventStore } from "./store/event-store.js";
import type { SnapshotStore } from "./store/snapshot-store.js";
import { SqliteEventStore, type SqliteEventStoreOptions } from "./store/sqlite-event-store.js";
import { SqliteSnapshotStore } from "./store/sqlite-snapshot-store.js";
import { AccountServiceService } from "../../client/src/gen/bank/v1/account_service.js";
import type { MetricsServer } from "./observability/metrics-server.js";
import { createObservability, methodsOf } from "./observability/observability.js";

export interface Eventbank {
  server: RunningServer;
  store: EventStore;
  /** The Prometheus /metrics listener; undefined when EVENTBANK_METRICS_PORT=0. */
  metrics: MetricsServer | undefined;
  /** Graceful: stop the server (finishing in-flight calls), then close the store. */
  stop(): Promise<void>;
}

export interface Stores {
  events: EventStore;
  /** Absent when EVENTBANK_SNAPSHOT_EVERY=0. */
  snapshots: SnapshotStore | undefined;
  /** Closes both (the snapshot store first: on EventStoreDB they share one connection). */
  close(): Promise<void>;
}

/** The configured event store and, beside it, the snapshot store. */
export async function createStores(config: Config, sqliteOptions: SqliteEventStoreOptions = {}): Promise<Stores> {
  const withSnapshots = config.snapshotEvery > 0;
  let events: EventStore;
  let snapshots: SnapshotStore | undefined;
  switch (config.store) {
    case "sqlite":
      events = new SqliteEventStore(config.sqlitePath, sqliteOptions);
      snapshots = withSnapshots ? new SqliteSnapshotStore(config.sqlitePath) : undefined;
      break;
    case "esdb": {
      const { EventStoreDBClient } = await import("@eventstore/db-client");
      const { EsdbEventStore } = await import("./store/esdb-event-store.js");
      const { EsdbSnapshotStore } = await import("./store/esdb-snapshot-store.js");
      // One connection for both; the event store owns it and disposes of it.
      const client = EventStoreDBClient.connectionString(config.eventStoreConnectionString!);
      events = new EsdbEventStore(client, {
        operationTimeoutMs: config.esdbOperationTimeoutMs,
        resubscribeTimeoutMs: config.esdbResubscribeTimeoutMs,
      });
      snapshots = withSnapshots ? new EsdbSnapshotStore(client) : undefined;
      break;
    }
  }
  return {
    events,
    snapshots,
    close: async () => {
      await snapshots?.close();
      await events.close();
    },
  };
}

export async function startEventbank(config: Config, logger: Logger, store?: EventStore): Promise<Eventbank> {
  const observability = createObservability(config, logger, { name: ACCOUNT_SERVICE_NAME, methods: methodsOf(AccountServiceService) });
  // A store passed in (tests) comes without snapshots.
  const stores: Stores = store
    ? { events: store, snapshots: undefined, close: () => store.close() }
    : await createStores(config, observability.onGroupCommit ? { onGroupCommit: observability.onGroupCommit } : {});
  const { snapshots } = stores;
  const eventStore = observability.wrapStore(stores.events);
  const commands = new AccountCommandHandler(eventStore, {
    cacheSize: config.cacheSize,
    cacheMaxCommands: config.cacheMaxCommands,
    idempotencyWindow: config.idempotencyWindow,
    maxAttempts: config.maxAttempts,
    snapshots,
    snapshotEvery: config.snapshotEvery,
    onSnapshotError: (error, stream) => {
      observability.metrics?.commands.snapshots.inc({ operation: "read_or_write", result: "error" });
      logger.warn({ err: error, stream }, "snapshot not read or written; the stream is replayed instead");
    },
    ...(observability.commandHooks ? { hooks: observability.commandHooks } : {}),
  });
  const subscriptions = new SubscriptionLimit(config.maxSubscriptions);
  if (config.apiKeys.length === 0) {
    logger.warn("AUTHENTICATION IS OFF: no EVENTBANK_API_KEYS configured, every caller may move money");
  }
  let server: RunningServer;
  let metrics: MetricsServer | undefined;
  try {
    metrics = await observability.listen();
    server = await startGrpcServer({
      host: config.host,
      port: config.port,
      logger,
      credentials: serverCredentials(config.tls),
      maxRequestBytes: config.maxRequestBytes,
      reflection: config.reflection,
      channelOptions: {
        "grpc.max_concurrent_streams": config.maxStreamsPerConnection,
        "grpc.keepalive_time_ms": config.keepaliveTimeMs,
        "grpc.keepalive_timeout_ms": config.keepaliveTimeoutMs,
        "grpc.max_connection_idle_ms": config.maxConnectionIdleMs,
      },
      ...(config.apiKeys.length > 0 ? { authenticate: (rpc, metadata) => authenticate(config.apiKeys, rpc, metadata) } : {}),
      commands,
      queries: new AccountQueries(eventStore),
      admitSubscription: () => subscriptions.admit(),
      ...(observability.rpcObserver ? { observer: observability.rpcObserver } : {}),
    });
  } catch (error) {
    await observability.close();
    await stores.close();
    throw error;
  }
  let stopping: Promise<void> | undefined;
  return {
    server,
    store: eventStore,
    metrics,
    stop: () => {
      stopping ??= (async () => {
        await server.shutdown(config.shutdownGraceMs);
        await stores.close();
        await observability.close();
      })();
      return stopping;
    },
  };
}
