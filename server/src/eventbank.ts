/** The composition root: config -> store -> application -> gRPC server. */
import type { Logger } from "pino";
import { AccountCommandHandler } from "./app/account-command-handler.js";
import { AccountQueries } from "./app/account-queries.js";
import { reportingFaults, StoreHealthMonitor } from "./app/store-health.js";
import type { Config } from "./config.js";
import { authenticate } from "./grpc/auth.js";
import { ACCOUNT_SERVICE_NAME, startGrpcServer, TRANSFER_SERVICE_NAME, type RunningServer } from "./grpc/grpc-server.js";
import { serverCredentials } from "./grpc/server-credentials.js";
import { SubscriptionLimit } from "./grpc/subscription-limit.js";
import { StoreBusyError, type EventStore } from "./store/event-store.js";
import type { SnapshotStore } from "./store/snapshot-store.js";
import { SqliteEventStore, type SqliteEventStoreOptions } from "./store/sqlite-event-store.js";
import { SqliteSnapshotStore } from "./store/sqlite-snapshot-store.js";
import { onUnknownEvent } from "./app/unknown-events.js";
import { CommandRuntime } from "./app/command-runtime.js";
import { transferAggregate } from "./app/transfer-aggregate.js";
import { TransferProcess, type Failpoint } from "./app/transfer-process.js";
import { TransferProcessManager } from "./app/transfer-process-manager.js";
import { Transfers } from "./app/transfers.js";
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
      events = new SqliteEventStore(config.sqlitePath, { ...sqliteOptions, lockTimeoutMs: config.sqliteLockTimeoutMs });
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
  // Store faults met by any call make health NOT_SERVING until a probe finds the store working again.
  let health: StoreHealthMonitor | undefined;
  const eventStore = reportingFaults(observability.wrapStore(stores.events), (fault) => health?.reportFault(fault));
  // Snapshots are optional: their faults never fail a command, but a full or read-only disk still
  // shows in health. A snapshot write losing a race for the lock says nothing about the store.
  const snapshots =
    stores.snapshots && reportingFaults(stores.snapshots, (fault) => (fault instanceof StoreBusyError ? undefined : health?.reportFault(fault)));
  const commands = new AccountCommandHandler(eventStore, {
    cacheSize: config.cacheSize,
    cacheMaxCommands: config.cacheMaxCommands,
    cacheMaxBytes: config.cacheMaxBytes,
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
  // Transfers: not cached (see transfer-aggregate.ts), a short window (a transfer takes three commands).
  const transferCommands = new CommandRuntime(transferAggregate, eventStore, { cacheSize: 0, maxAttempts: config.maxAttempts, idempotencyWindow: 16 });
  const failpoint = (name: Failpoint) => {
    if (!config.failpoints.has(name)) return;
    logger.fatal({ failpoint: name }, "EVENTBANK_FAILPOINTS: killing this process at a transfer step boundary");
    process.kill(process.pid, "SIGKILL");
  };
  const transferProcess = new TransferProcess({ executeStep: (command, context) => commands.step(command, context), transfers: transferCommands, failpoint });
  const transfers = new Transfers({
    accounts: commands,
    transfers: transferCommands,
    process: transferProcess,
    failpoint,
    onBackgroundError: (error, transferId) => logger.warn({ err: error, transferId }, "transfer not finished; the transfer process will finish it"),
  });
  const transferManager = new TransferProcessManager({
    store: eventStore,
    process: transferProcess,
    getTransfer: (transferId) => transfers.getTransfer(transferId),
    logger,
    recoveryAfterMs: config.transferRecoveryMs,
  });
  const stopReportingUnknownEvents = onUnknownEvent((error) =>
    logger.warn({ accountId: error.accountId, revision: String(error.revision), eventType: error.eventType, schemaVersion: error.schemaVersion }, error.message),
  );
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
      transfers,
      queries: new AccountQueries(eventStore),
      admitSubscription: () => subscriptions.admit(),
      ...(observability.rpcObserver ? { observer: observability.rpcObserver } : {}),
    });
  } catch (error) {
    stopReportingUnknownEvents();
    await observability.close();
    await stores.close();
    throw error;
  }
  let stopping: Promise<void> | undefined;
  const monitor = new StoreHealthMonitor({
    probe: () => (stores.events.probe ? stores.events.probe() : Promise.resolve()),
    intervalMs: config.healthProbeIntervalMs,
    // A remote store can go away without any call noticing; the local file fails only when used.
    probeWhileServing: config.store === "esdb" && !store,
    onChange: (serving, cause) => {
      if (stopping) return;
      const state = serving ? "SERVING" : "NOT_SERVING";
      server.health.setStatus("", state);
      server.health.setStatus(ACCOUNT_SERVICE_NAME, state);
      server.health.setStatus(TRANSFER_SERVICE_NAME, state);
      if (serving) logger.info("store available again; health SERVING");
      else logger.warn({ err: cause }, "store cannot serve; health NOT_SERVING until a probe succeeds");
    },
  });
  health = monitor;
  monitor.start();
  startTransferManager(transferManager, logger, config.transferRecoveryMs);
  return {
    server,
    store: eventStore,
    metrics,
    stop: () => {
      stopping ??= (async () => {
        monitor.close();
        await server.shutdown(config.shutdownGraceMs);
        await transferManager.close();
        stopReportingUnknownEvents();
        await stores.close();
        await observability.close();
      })();
      return stopping;
    },
  };
}

/** Starts the transfer process manager, trying again while the store cannot be read (it finishes transfers later). */
function startTransferManager(manager: TransferProcessManager, logger: Logger, retryMs: number): void {
  manager.start().catch((error: unknown) => {
    logger.warn({ err: error }, "transfer process not started; trying again");
    setTimeout(() => startTransferManager(manager, logger, retryMs), retryMs).unref();
  });
}
