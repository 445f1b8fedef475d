/** bank.v1.AccountService: decodes requests into commands and queries, encodes results. */
import {
  ReadDirection,
  type AccountServiceServer,
  type CloseAccountRequest,
  type DepositRequest,
  type OpenAccountRequest,
  type SubscribeAccountResponse,
  type SubscribeAllResponse,
  type WithdrawRequest,
} from "../../../client/src/gen/bank/v1/account_service.js";
import type { AccountCommandHandler, CommandContext } from "../app/account-command-handler.js";
import type { AccountQueries } from "../app/account-queries.js";
import type { AccountCommand } from "../domain/account.js";
import { ValidationError } from "../domain/errors.js";
import type { Subscription, SubscriptionMessage } from "../store/event-store.js";
import { inBatches, type BatchedMessage } from "./event-batches.js";
import { toAccountEventMessage, toAccountMessage } from "./proto-mapping.js";
import { serverStream, unary, type CallContext, type MessageSource, type RpcRuntime } from "./rpc-handlers.js";

/** The most events a subscription puts in one message (max_events_per_message). */
export const MAX_EVENTS_PER_MESSAGE = 1_000;

export interface AccountServiceDependencies {
  commands: AccountCommandHandler;
  queries: AccountQueries;
  /** Opens a subscription, or throws when a limit says no. */
  admitSubscription?: () => () => void;
}

export function createAccountService(runtime: RpcRuntime, deps: AccountServiceDependencies): AccountServiceServer {
  const { commands, queries } = deps;

  const execute = async (command: AccountCommand, request: { commandId: string; expectedRevision?: bigint | undefined }, context: CallContext) => {
    const snapshot = await commands.execute(command, commandContext(request, context));
    return { account: toAccountMessage(snapshot), revision: snapshot.revision };
  };

  /** Opens a subscription for a stream RPC: `messages` says what it delivers (as is, or regrouped), `wrap` how each is sent. */
  const subscription = <M, R>(open: () => Subscription, messages: (source: Subscription) => AsyncIterable<M>, wrap: (message: M) => R): MessageSource<R> => {
    const release = deps.admitSubscription?.() ?? (() => {});
    let source: Subscription;
    try {
      source = open();
    } catch (error) {
      release();
      throw error;
    }
    // release() is idempotent (SubscriptionLimit), so every way out may call it.
    const close = async () => {
      release();
      await source.close();
    };
    return {
      close,
      async *[Symbol.asyncIterator]() {
        try {
          for await (const message of messages(source)) yield wrap(message);
        } finally {
          await close();
        }
      },
    };
  };

  /**
   * A subscription's stream: one event per message, or when the request asks, the events that are
   * ready together (SubscribeAccountResponse and SubscribeAllResponse have the same shape).
   */
  const subscribeWith = (maxEventsPerMessage: number | undefined, open: () => Subscription): MessageSource<SubscribeAccountResponse & SubscribeAllResponse> => {
    const max = maxEventsPerMessage ?? 0;
    if (max > MAX_EVENTS_PER_MESSAGE) {
      throw new ValidationError("INVALID_ARGUMENT", "max_events_per_message", `max_events_per_message must be at most ${MAX_EVENTS_PER_MESSAGE}`);
    }
    if (max <= 1) return subscription(open, (source) => source, (message) => ({ message: toStreamMessage(message) }));
    return subscription(
      open,
      (source) => inBatches(source, max),
      (message: BatchedMessage) => ({
        message: message.type === "events" ? { $case: "events", value: { events: message.events.map(toAccountEventMessage) } } : toStreamMessage(message),
      }),
    );
  };

  return {
    openAccount: unary(runtime, "OpenAccount", (request: OpenAccountRequest, context) =>
      execute({ type: "OpenAccount", accountId: request.accountId, owner: request.owner, currency: request.currency }, request, context),
    ),
    deposit: unary(runtime, "Deposit", (request: DepositRequest, context) =>
      execute({ type: "Deposit", accountId: request.accountId, amount: request.amount }, request, context),
    ),
    withdraw: unary(runtime, "Withdraw", (request: WithdrawRequest, context) =>
      execute({ type: "Withdraw", accountId: request.accountId, amount: request.amount }, request, context),
    ),
    closeAccount: unary(runtime, "CloseAccount", (request: CloseAccountRequest, context) =>
      execute({ type: "CloseAccount", accountId: request.accountId }, request, context),
    ),
    getAccount: unary(runtime, "GetAccount", async (request) => ({
      account: toAccountMessage(await commands.getAccount(request.accountId)),
    })),
    readAccountEvents: unary(runtime, "ReadAccountEvents", async (request) => {
      const events = await queries.readEvents({
        accountId: request.accountId,
        ...(request.fromRevision === undefined ? {} : { fromRevision: request.fromRevision }),
        maxCount: request.maxCount,
        direction: request.direction === ReadDirection.READ_DIRECTION_BACKWARDS ? "backwards" : "forwards",
      });
      return { events: events.map(toAccountEventMessage) };
    }),
    subscribeAccount: serverStream(runtime, "SubscribeAccount", (request) =>
      subscribeWith(request.maxEventsPerMessage, () => queries.subscribeToAccount(request.accountId, request.fromRevision)),
    ),
    subscribeAll: serverStream(runtime, "SubscribeAll", (request) =>
      subscribeWith(request.maxEventsPerMessage, () => queries.subscribeToAll(request.fromPosition)),
    ),
  };
}

function toStreamMessage(message: SubscriptionMessage): SubscribeAccountResponse["message"] {
  // Clients' subscriptions ask for no checkpoints, so a message is an event or the caught-up marker.
  return message.type === "event"
    ? { $case: "event", value: toAccountEventMessage(message.event) }
    : { $case: "caughtUp", value: {} };
}

function commandContext(request: { commandId: string; expectedRevision?: bigint | undefined }, context: CallContext): CommandContext {
  return {
    commandId: request.commandId,
    correlationId: context.correlationId ?? request.commandId,
    causationId: request.commandId,
    signal: context.signal,
    ...(context.principal === undefined ? {} : { principal: context.principal }),
    ...(context.trace === undefined ? {} : { trace: context.trace }),
    ...(request.expectedRevision === undefined ? {} : { expectedRevision: request.expectedRevision }),
  };
}
