/**
 * The Prometheus registry and every metric the server exposes. gRPC metrics
 * use grpc-ecosystem/go-grpc-prometheus's names and labels, so dashboards
 * built for it work unchanged. Label values come from small fixed sets
 * (methods, codes, reasons, kinds): never an account id or a command id.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { plainCounter, type PlainCounter } from "./plain-counter.js";

/** Seconds; prometheus.DefBuckets, as go-grpc-prometheus uses them. */
const RPC_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds; a durable SQLite append is a fraction of a millisecond to a few milliseconds. */
const APPEND_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64];

const GRPC_LABELS = ["grpc_type", "grpc_service", "grpc_method"] as const;
type GrpcLabel = (typeof GRPC_LABELS)[number];

export type SubscriptionKind = "account" | "all";

export interface Metrics {
  registry: Registry;
  /** Counted on every call: plain counters (plain-counter.ts). */
  grpc: {
    started: PlainCounter<GrpcLabel>;
    handled: PlainCounter<GrpcLabel | "grpc_code">;
    handlingSeconds: Histogram<GrpcLabel>;
    msgReceived: PlainCounter<GrpcLabel>;
    msgSent: PlainCounter<GrpcLabel>;
  };
  store: {
    appendSeconds: Histogram<"outcome">;
    eventsAppended: Counter;
    bytesAppended: Counter;
    groupCommitSize: Histogram;
    conflicts: Counter;
    retries: Counter;
    errors: Counter<"operation" | "reason">;
  };
  commands: {
    outcomes: PlainCounter<"command" | "outcome">;
    batchSize: Histogram;
    cache: PlainCounter<"result">;
    snapshots: Counter<"operation" | "result">;
    repeatsAnswered: Counter;
  };
  /** Transfer state changes this server recorded; summed over servers, requested - completed - failed are pending. */
  transfers: PlainCounter<"state">;
  subscriptions: {
    open: Gauge<"kind">;
    eventsSent: PlainCounter<"kind">;
    lag: Gauge<"kind">;
  };
}

export interface MetricsOptions {
  /** Computes the lag gauge at scrape time (largest lag per kind, in events). */
  subscriptionLag?: () => Record<SubscriptionKind, number>;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // Gauges named like counters (…_total): promtool check metrics rejects them, and libuv handle counts are not worth a lint failure.
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) registry.removeSingleMetric(name);
  const registers = [registry];
  const grpcCounter = (name: string, help: string) => plainCounter({ name, help, labelNames: GRPC_LABELS, registers });

  return {
    registry,
    grpc: {
      started: grpcCounter("grpc_server_started_total", "Total number of RPCs started on the server."),
      handled: plainCounter({
        name: "grpc_server_handled_total",
        help: "Total number of RPCs completed on the server, regardless of success or failure.",
        labelNames: [...GRPC_LABELS, "grpc_code"],
        registers,
      }),
      handlingSeconds: new Histogram({
        name: "grpc_server_handling_seconds",
        help: "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
        labelNames: GRPC_LABELS,
        buckets: RPC_BUCKETS,
        registers,
      }),
      msgReceived: grpcCounter("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server."),
      msgSent: grpcCounter("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server."),
    },
    store: {
      appendSeconds: new Histogram({
        name: "eventbank_store_append_seconds",
        help: "Time an append to the event store took, until durable (outcome: ok, conflict, error).",
        labelNames: ["outcome"],
        buckets: APPEND_BUCKETS,
        registers,
      }),
      eventsAppended: new Counter({ name: "eventbank_store_events_appended_total", help: "Events appended to the event store.", registers }),
      bytesAppended: new Counter({
        name: "eventbank_store_appended_bytes_total",
        help: "Bytes of event data and metadata (JSON) appended to the event store.",
        registers,
      }),
      groupCommitSize: new Histogram({
        name: "eventbank_store_group_commit_appends",
        help: "Appends written together in one SQLite transaction (group commit).",
        buckets: SIZE_BUCKETS,
        registers,
      }),
      conflicts: new Counter({
        name: "eventbank_store_expected_revision_conflicts_total",
        help: "Appends refused because the stream was not at the expected revision.",
        registers,
      }),
      retries: new Counter({
        name: "eventbank_store_append_retries_total",
        help: "Appends tried again after a conflict with another writer.",
        registers,
      }),
      errors: new Counter({
        name: "eventbank_store_errors_total",
        help: "Event store operations that failed, by operation and reason (conflicts are counted apart).",
        labelNames: ["operation", "reason"],
        registers,
      }),
    },
    commands: {
      outcomes: plainCounter({
        name: "eventbank_commands_total",
        help: "Account commands answered, by command and outcome (accepted, or the ErrorInfo reason).",
        labelNames: ["command", "outcome"],
        registers,
      }),
      batchSize: new Histogram({
        name: "eventbank_command_batch_size",
        help: "Commands of one account decided together and written in one append.",
        buckets: SIZE_BUCKETS,
        registers,
      }),
      cache: plainCounter({
        name: "eventbank_account_cache_lookups_total",
        help: "Account cache lookups when loading an account (result: hit, miss).",
        labelNames: ["result"],
        registers,
      }),
      snapshots: new Counter({
        name: "eventbank_snapshots_total",
        help: "Snapshots read (result: found, none), written (ok), and failed reads or writes (operation read_or_write, result error).",
        labelNames: ["operation", "result"],
        registers,
      }),
      repeatsAnswered: new Counter({
        name: "eventbank_command_repeats_answered_total",
        help: "Commands whose id was seen before, answered with the first outcome (nothing appended).",
        registers,
      }),
    },
    transfers: plainCounter({
      name: "eventbank_transfers_total",
      help: "Transfers this server moved into a state (requested, completed, failed); summed over all servers, requested minus completed minus failed are pending.",
      labelNames: ["state"],
      registers,
    }),
    subscriptions: {
      open: new Gauge({ name: "eventbank_subscriptions_open", help: "Open subscriptions, by kind (account, all).", labelNames: ["kind"], registers }),
      eventsSent: plainCounter({
        name: "eventbank_subscription_events_sent_total",
        help: "Events delivered to subscriptions, by kind.",
        labelNames: ["kind"],
        registers,
      }),
      lag: new Gauge({
        name: "eventbank_subscription_lag_events",
        help: "How many events the furthest-behind open subscription of each kind is behind the head of the store, as this server has seen it.",
        labelNames: ["kind"],
        registers,
        collect() {
          const lag = options.subscriptionLag?.();
          for (const kind of ["account", "all"] as const) this.set({ kind }, lag?.[kind] ?? 0);
        },
      }),
    },
  };
}

/**
 * Series that exist from the start at 0, as go-grpc-prometheus's
 * InitializeMetrics makes them, so rate() and alerts work before the first call.
 */
export function initializeGrpcMetrics(metrics: Metrics, service: string, methods: Array<{ name: string; type: GrpcType }>): void {
  for (const { name, type } of methods) {
    const labels = { grpc_type: type, grpc_service: service, grpc_method: name };
    metrics.grpc.started.labels(labels);
    metrics.grpc.msgReceived.labels(labels);
    metrics.grpc.msgSent.labels(labels);
    metrics.grpc.handlingSeconds.zero(labels);
    for (const code of GRPC_CODE_NAMES) metrics.grpc.handled.labels({ ...labels, grpc_code: code });
  }
  for (const state of ["requested", "completed", "failed"]) metrics.transfers.labels({ state });
  for (const kind of ["account", "all"] as const) {
    metrics.subscriptions.open.set({ kind }, 0);
    metrics.subscriptions.eventsSent.labels({ kind });
  }
}

export type GrpcType = "unary" | "client_stream" | "server_stream" | "bidi_stream";

/** gRPC status codes by number, spelled as Go's codes.Code.String() (and so go-grpc-prometheus) spells them. */
export const GRPC_CODE_NAMES = [
  "OK",
  "Canceled",
  "Unknown",
  "InvalidArgument",
  "DeadlineExceeded",
  "NotFound",
  "AlreadyExists",
  "PermissionDenied",
  "ResourceExhausted",
  "FailedPrecondition",
  "Aborted",
  "OutOfRange",
  "Unimplemented",
  "Internal",
  "Unavailable",
  "DataLoss",
  "Unauthenticated",
] as const;
