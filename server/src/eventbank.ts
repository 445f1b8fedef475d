/** The composition root: config -> store -> application -> gRPC server. */
import type { Logger } from "pino";
import { AccountCommandHandler } from "./app/account-command-handler.js";
import { AccountQueries } from "./app/account-queries.js";
import type { Config } from "./config.js";
import { authenticate } from "./grpc/auth.js";
import { startGrpcServer, type RunningServer } from "./grpc/grpc-server.js";
import { serverCredentials } from "./grpc/server-credentials.js";
import { SubscriptionLimit } from "./grpc/subscription-limit.js";
import type { EventStore } from "./store/event-store.js";
import type { SnapshotStore } from "./store/snapshot-store.js";
import { SqliteEventStore } from "./store/sqlite-event-store.js";
import { SqliteSnapshotStore } from "./store/sqlite-snapshot-store.js";

export interface Eventbank {
  server: RunningServer;
  store: EventStore;
  /** Graceful: stop the server (finishing in-flight calls), then close the store. */
  stop(): Promise<void>;
}

export async function createStore(config: Config): Promise<EventStore> {
  switch (config.store) {
    case "sqlite":
      return new SqliteEventStore(config.sqlitePath);
    case "esdb": {
      const { createEsdbEventStore } = await import("./store/esdb-event-store.js");
      return createEsdbEventStore(config.eventStoreConnectionString!, {
        operationTimeoutMs: config.esdbOperationTimeoutMs,
        resubscribeTimeoutMs: config.esdbResubscribeTimeoutMs,
      });
    }
  }
}

/** Snapshots next to the events; none when EVENTBANK_SNAPSHOT_EVERY=0. */
export async function createSnapshotStore(config: Config): Promise<SnapshotStore | undefined> {
  if (config.snapshotEvery === 0) return undefined;
  switch (config.store) {
    case "sqlite":
      return new SqliteSnapshotStore(config.sqlitePath);
    case "esdb": {
      const { EsdbSnapshotStore } = await import("./store/esdb-snapshot-store.js");
      return EsdbSnapshotStore.fromConnectionString(config.eventStoreConnectionString!);
    }
  }
}

export async function startEventbank(config: Config, logger: Logger, store?: EventStore): Promise<Eventbank> {
  const eventStore = store ?? (await createStore(config));
  // A store passed in (tests) comes without snapshots.
  const snapshots = store ? undefined : await createSnapshotStore(config);
  const commands = new AccountCommandHandler(eventStore, {
    cacheSize: config.cacheSize,
    cacheMaxCommands: config.cacheMaxCommands,
    idempotencyWindow: config.idempotencyWindow,
    maxAttempts: config.maxAttempts,
    snapshots,
    snapshotEvery: config.snapshotEvery,
    onSnapshotError: (error, stream) => logger.warn({ err: error, stream }, "snapshot not read or written; the stream is replayed instead"),
  });
  const subscriptions = new SubscriptionLimit(config.maxSubscriptions);
  if (config.apiKeys.length === 0) {
    logger.warn("AUTHENTICATION IS OFF: no EVENTBANK_API_KEYS configured, every caller may move money");
  }
  let server: RunningServer;
  try {
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
    });
  } catch (error) {
    await eventStore.close();
    await snapshots?.close();
    throw error;
  }
  let stopping: Promise<void> | undefined;
  return {
    server,
    store: eventStore,
    stop: () => {
      stopping ??= (async () => {
        await server.shutdown(config.shutdownGraceMs);
        await eventStore.close();
        await snapshots?.close();
      })();
      return stopping;
    },
  };
}
