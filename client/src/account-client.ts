/**
 * The typed client for bank.v1.AccountService: promises, bigint, plain
 * objects, typed errors, safe retries and resumable subscriptions, on top of
 * the generated ts-proto codecs (callers never see the raw stubs).
 */
import { randomUUID } from "node:crypto";
import {
  Client,
  credentials as grpcCredentials,
  Metadata,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientReadableStream,
  type Interceptor,
} from "@grpc/grpc-js";
import { ReadDirection, AccountServiceService as Service } from "./gen/bank/v1/account_service.js";
import type { Account as WireAccount, AccountEvent as WireEvent } from "./gen/bank/v1/account.js";
import { toEventbankError, UnavailableError } from "./errors.js";
import { toAccount, toAccountEvent, toTransfer } from "./proto-mapping.js";
import { TransferServiceService as Transfers } from "./gen/bank/v1/transfer_service.js";
import { injectTraceContext } from "./trace-context.js";
import { backoffMs, cancelled, isRetryable, retryPolicy, sleep, type RetryOptions, type RetryPolicy } from "./retry.js";
import type { Account, AccountEvent, CommandResult, SubscriptionItem, Transfer } from "./types.js";

export interface AccountClientOptions {
  /** host:port, e.g. "127.0.0.1:50051". */
  address: string;
  /** Default: insecure (plaintext). Build TLS ones with the `credentials` this package re-exports. */
  credentials?: ChannelCredentials;
  /** Sent with every call (e.g. `{ authorization: "Bearer ..." }`). */
  metadata?: Record<string, string>;
  /** Deadline of each attempt of a unary call. Default 10 000 ms. */
  defaultDeadlineMs?: number;
  /** Retries of UNAVAILABLE and DEADLINE_EXCEEDED; `false` disables. Default 5 attempts, 50 ms doubling to 2 s. */
  retry?: RetryOptions | false;
  /** grpc-js channel options; they override the SDK's (shorter) reconnect backoff. */
  channelOptions?: ChannelOptions;
  /** grpc-js client interceptors (tracing, tests). */
  interceptors?: Interceptor[];
}

export interface CallOptions {
  /** Deadline of each attempt, overriding `defaultDeadlineMs`. */
  deadlineMs?: number;
  /** Cancels the call (and any retry) when aborted; the promise rejects with CancelledError. */
  signal?: AbortSignal;
  metadata?: Record<string, string>;
  /** Sent as x-correlation-id; the server records it on the events. */
  correlationId?: string;
  retry?: RetryOptions | false;
}

export interface OpenAccountInput {
  accountId: string;
  owner: string;
  currency: string;
  /** Idempotency key; the SDK makes a UUID when absent. */
  commandId?: string;
}

export interface MoneyInput {
  accountId: string;
  /** Minor units, 1 to 1 000 000 000 000. */
  amount: bigint;
  commandId?: string;
  /** Apply only at exactly this revision, else RevisionConflictError (never retried). */
  expectedRevision?: bigint;
}

export interface CloseAccountInput {
  accountId: string;
  commandId?: string;
  expectedRevision?: bigint;
}

export interface TransferInput {
  /** Idempotency key: retries (the SDK's and yours) reuse it. The SDK makes a UUID when absent. */
  transferId?: string;
  fromAccountId: string;
  toAccountId: string;
  /** Minor units, 1 to 1 000 000 000 000. */
  amount: bigint;
  /** At most 140 characters. */
  reference?: string;
}

export interface ReadEventsOptions extends CallOptions {
  /** Inclusive. Default: the first event (forwards) or the last (backwards). */
  fromRevision?: bigint;
  /** Default 100, at most 1000. */
  maxCount?: number;
  direction?: "forwards" | "backwards";
}

export interface SubscribeOptions {
  /** Ends the subscription cleanly (iteration just stops) and cancels the server stream. */
  signal?: AbortSignal;
  metadata?: Record<string, string>;
  /**
   * Re-subscribe after UNAVAILABLE (store down, server shutting down or
   * restarting, connection lost) from the last delivered event, with backoff.
   * `true`: 10 consecutive attempts, 100 ms doubling to 5 s.
   */
  resume?: boolean | RetryOptions;
  /**
   * Events the server may send in one message when they are ready together
   * (max_events_per_message, 1 to 1,000). Default 256, which makes a
   * catch-up several times faster; 1: one event per message. Iteration
   * yields one event at a time either way.
   */
  eventsPerMessage?: number;
}

export interface SubscribeAccountOptions extends SubscribeOptions {
  /** Exclusive: delivery starts at fromRevision + 1. Default: from revision 0. */
  fromRevision?: bigint;
}

export interface SubscribeAllOptions extends SubscribeOptions {
  /** Exclusive: the events after this position (an event's `position`). Default: from the first event. */
  fromPosition?: string;
}

/**
 * Events, then `{ type: "caughtUp" }`, then live events. Iterate it once;
 * `break`, `close()` or the signal end it and cancel the server stream.
 */
export interface Subscription extends AsyncIterable<SubscriptionItem> {
  /** Resolves true when the first caughtUp is delivered, false if the subscription ends before. Never rejects. */
  readonly caughtUp: Promise<boolean>;
  close(): void;
}

export interface AccountClient {
  openAccount(input: OpenAccountInput, options?: CallOptions): Promise<CommandResult>;
  deposit(input: MoneyInput, options?: CallOptions): Promise<CommandResult>;
  withdraw(input: MoneyInput, options?: CallOptions): Promise<CommandResult>;
  closeAccount(input: CloseAccountInput, options?: CallOptions): Promise<CommandResult>;
  getAccount(accountId: string, options?: CallOptions): Promise<Account>;
  readAccountEvents(accountId: string, options?: ReadEventsOptions): Promise<AccountEvent[]>;
  subscribeAccount(accountId: string, options?: SubscribeAccountOptions): Subscription;
  subscribeAll(options?: SubscribeAllOptions): Subscription;
  /**
   * Moves money between two accounts (bank.v1.TransferService) and resolves
   * with the completed transfer; a failed one rejects with the refusal's
   * typed error (InsufficientFundsError, AccountClosedError,
   * CurrencyMismatchError, ...; `error.transferId` names it). Retries reuse
   * the transfer id, so the money moves once.
   */
  transfer(input: TransferInput, options?: CallOptions): Promise<Transfer>;
  getTransfer(transferId: string, options?: CallOptions): Promise<Transfer>;
  /** Ends open subscriptions and closes the channel. */
  close(): void;
}

/** The codecs of one generated method. */
interface Method<Req, Res> {
  path: string;
  requestSerialize(value: Req): Buffer;
  responseDeserialize(value: Buffer): Res;
}

const DEFAULT_DEADLINE_MS = 10_000;
const DEFAULT_RESUME: RetryPolicy = { maxAttempts: 10, initialBackoffMs: 100, maxBackoffMs: 5_000 };
/** grpc-js waits 1 s before reconnecting by default, longer than our first retries; shorten it. */
const DEFAULT_CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 5_000,
};

export function createAccountClient(options: AccountClientOptions): AccountClient {
  const client = new Client(options.address, options.credentials ?? grpcCredentials.createInsecure(), {
    ...DEFAULT_CHANNEL_OPTIONS,
    ...options.channelOptions,
    ...(options.interceptors ? { interceptors: options.interceptors } : {}),
  });
  const defaultRetry = retryPolicy(options.retry);
  const defaultDeadlineMs = options.defaultDeadlineMs ?? DEFAULT_DEADLINE_MS;
  /** Aborted by close(), to end open subscriptions. */
  const closing = new AbortController();

  const metadataOf = (extra: Record<string, string> | undefined, correlationId?: string): Metadata => {
    const metadata = new Metadata();
    for (const [key, value] of Object.entries({ ...options.metadata, ...extra })) metadata.set(key, value);
    if (correlationId !== undefined) metadata.set("x-correlation-id", correlationId);
    injectTraceContext(metadata);
    return metadata;
  };

  const attempt = <Req, Res>(method: Method<Req, Res>, request: Req, call: CallOptions): Promise<Res> =>
    new Promise((resolve, reject) => {
      const { signal } = call;
      if (signal?.aborted) return reject(cancelled(signal));
      const deadline = new Date(Date.now() + (call.deadlineMs ?? defaultDeadlineMs));
      const onAbort = () => pending.cancel();
      const pending = client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        metadataOf(call.metadata, call.correlationId),
        { deadline },
        (error, response) => {
          signal?.removeEventListener("abort", onAbort);
          if (error) reject(signal?.aborted ? cancelled(signal) : toEventbankError(error));
          else resolve(response!);
        },
      );
      signal?.addEventListener("abort", onAbort, { once: true });
    });

  /** One logical call: the same request (so the same command id) on every attempt. */
  const unary = async <Req, Res>(method: Method<Req, Res>, request: Req, call: CallOptions = {}): Promise<Res> => {
    const policy = call.retry === undefined ? defaultRetry : retryPolicy(call.retry);
    for (let attemptNo = 1; ; attemptNo++) {
      try {
        return await attempt(method, request, call);
      } catch (error) {
        const failure = toEventbankError(error);
        if (attemptNo >= policy.maxAttempts || !isRetryable(failure)) throw failure;
        await sleep(backoffMs(policy, attemptNo - 1), call.signal);
      }
    }
  };

  const command = async <Req extends { commandId: string }>(
    method: Method<Req, { account?: WireAccount | undefined; revision: bigint }>,
    request: Req,
    call?: CallOptions,
  ): Promise<CommandResult> => {
    const response = await unary(method, request, call);
    return { account: toAccount(response.account), revision: response.revision, commandId: request.commandId };
  };

  const commandId = (given: string | undefined) => given ?? randomUUID();

  const serverStream = <Req, Res>(method: Method<Req, Res>, request: Req, sub: SubscribeOptions): ClientReadableStream<Res> =>
    client.makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, request, metadataOf(sub.metadata));

  return {
    openAccount: (input, call) =>
      command(Service.openAccount, { accountId: input.accountId, owner: input.owner, currency: input.currency, commandId: commandId(input.commandId) }, call),
    deposit: (input, call) => command(Service.deposit, moneyRequest(input, commandId(input.commandId)), call),
    withdraw: (input, call) => command(Service.withdraw, moneyRequest(input, commandId(input.commandId)), call),
    closeAccount: (input, call) =>
      command(Service.closeAccount, { accountId: input.accountId, commandId: commandId(input.commandId), expectedRevision: input.expectedRevision }, call),
    getAccount: async (accountId, call) => toAccount((await unary(Service.getAccount, { accountId }, call)).account),
    transfer: async (input, call) => {
      const request = {
        transferId: input.transferId ?? randomUUID(),
        fromAccountId: input.fromAccountId,
        toAccountId: input.toAccountId,
        amount: input.amount,
        reference: input.reference,
      };
      return toTransfer((await unary(Transfers.transferMoney, request, call)).transfer);
    },
    getTransfer: async (transferId, call) => toTransfer((await unary(Transfers.getTransfer, { transferId }, call)).transfer),
    readAccountEvents: async (accountId, read = {}) => {
      const response = await unary(
        Service.readAccountEvents,
        {
          accountId,
          fromRevision: read.fromRevision,
          maxCount: read.maxCount ?? 0,
          direction: read.direction === "backwards" ? ReadDirection.READ_DIRECTION_BACKWARDS : ReadDirection.READ_DIRECTION_FORWARDS,
        },
        read,
      );
      return response.events.map(toAccountEvent);
    },
    subscribeAccount: (accountId, sub = {}) =>
      subscription(
        sub,
        closing.signal,
        sub.fromRevision,
        (from) => serverStream(Service.subscribeAccount, { accountId, fromRevision: from, maxEventsPerMessage: sub.eventsPerMessage ?? EVENTS_PER_MESSAGE }, sub),
        (event) => event.revision,
      ),
    subscribeAll: (sub = {}) =>
      subscription(
        sub,
        closing.signal,
        sub.fromPosition,
        (from) => serverStream(Service.subscribeAll, { fromPosition: from, maxEventsPerMessage: sub.eventsPerMessage ?? EVENTS_PER_MESSAGE }, sub),
        (event) => event.position,
      ),
    close: () => {
      closing.abort();
      client.close();
    },
  };
}

function moneyRequest(input: MoneyInput, commandId: string) {
  return { accountId: input.accountId, amount: input.amount, commandId, expectedRevision: input.expectedRevision };
}

/**
 * What subscriptions ask for by default: events per message, when they are ready together (a
 * catch-up is several times faster); a server older than the field sends one per message, which
 * reads the same.
 */
const EVENTS_PER_MESSAGE = 256;

type StreamMessage = {
  message?: { $case: "event"; value: WireEvent } | { $case: "events"; value: { events: WireEvent[] } } | { $case: "caughtUp"; value: object } | undefined;
};

/**
 * A subscription over one or more server streams: `open(from)` starts a
 * stream after `from` (a revision or a position); `cursorOf` says what to
 * resume after once an event has been delivered.
 */
function subscription<From>(
  options: SubscribeOptions,
  clientClosing: AbortSignal,
  start: From | undefined,
  open: (from: From | undefined) => ClientReadableStream<StreamMessage>,
  cursorOf: (event: AccountEvent) => From,
): Subscription {
  const own = new AbortController();
  const signal = AbortSignal.any([own.signal, clientClosing, ...(options.signal ? [options.signal] : [])]);
  const policy = options.resume ? retryPolicy(options.resume, DEFAULT_RESUME) : undefined;
  let settleCaughtUp!: (value: boolean) => void;
  const caughtUp = new Promise<boolean>((resolve) => (settleCaughtUp = resolve));

  async function* run(): AsyncGenerator<SubscriptionItem, void, undefined> {
    let from = start;
    let failures = 0;
    try {
      while (!signal.aborted) {
        let stream: ClientReadableStream<StreamMessage>;
        try {
          stream = open(from);
        } catch (error) {
          throw toEventbankError(error); // e.g. the client was closed
        }
        const cancel = () => stream.cancel();
        signal.addEventListener("abort", cancel, { once: true });
        // Errors reach us through iteration; without a listener a late CANCELLED would be thrown as an unhandled 'error'.
        stream.on("error", () => {});
        try {
          for await (const response of stream as AsyncIterable<StreamMessage>) {
            failures = 0; // the server answered: the next outage starts a fresh backoff
            const message = response.message;
            if (message?.$case === "event" || message?.$case === "events") {
              for (const wire of message.$case === "event" ? [message.value] : message.value.events) {
                const event = toAccountEvent(wire);
                from = cursorOf(event); // before yielding: a resume never repeats a delivered event
                yield event;
              }
            } else if (message?.$case === "caughtUp") {
              settleCaughtUp(true);
              yield { type: "caughtUp" };
            }
          }
          return; // the server ended the stream
        } catch (error) {
          if (signal.aborted) return;
          const failure = toEventbankError(error);
          if (!policy || !(failure instanceof UnavailableError) || failures + 1 >= policy.maxAttempts) throw failure;
          await sleep(backoffMs(policy, failures++), signal).catch(() => undefined); // aborted: the loop ends
        } finally {
          signal.removeEventListener("abort", cancel);
          stream.cancel(); // no-op when the call already ended
        }
      }
    } finally {
      settleCaughtUp(false);
    }
  }

  const iterator = run();
  return {
    caughtUp,
    close: () => own.abort(),
    [Symbol.asyncIterator]: () => iterator,
  };
}
