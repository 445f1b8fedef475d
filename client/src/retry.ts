/** Bounded retries with jittered exponential backoff. */
import { CancelledError, ConcurrencyConflictError, DeadlineExceededError, UnavailableError, type EventbankError } from "./errors.js";

export interface RetryOptions {
  /** Attempts in all, the first included (1 = no retry). */
  maxAttempts?: number;
  /** Backoff before the first retry; doubles per retry, up to maxBackoffMs. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export type RetryPolicy = Required<RetryOptions>;

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, initialBackoffMs: 50, maxBackoffMs: 2_000 };
export const NO_RETRY: RetryPolicy = { maxAttempts: 1, initialBackoffMs: 0, maxBackoffMs: 0 };

export function retryPolicy(options: RetryOptions | boolean | undefined, fallback: RetryPolicy = DEFAULT_RETRY): RetryPolicy {
  if (options === false) return NO_RETRY;
  if (options === true || options === undefined) return fallback;
  const policy = { ...fallback, ...definedOnly(options) };
  if (!(policy.maxAttempts >= 1) || !(policy.initialBackoffMs >= 0) || !(policy.maxBackoffMs >= 0)) {
    throw new RangeError(`invalid retry options ${JSON.stringify(options)}`);
  }
  return policy;
}

/**
 * Only failures where the request may not have been applied, or was applied
 * idempotently, are retried: UNAVAILABLE, DEADLINE_EXCEEDED, and the ABORTED
 * that says other writers kept winning (the server decided nothing; the same
 * command id makes a second try safe). Never the ABORTED of a conflict with
 * the caller's expected revision: that needs the caller's decision.
 */
export function isRetryable(error: EventbankError): boolean {
  return error instanceof UnavailableError || error instanceof DeadlineExceededError || error instanceof ConcurrencyConflictError;
}

/** Delay before retry number `retry` (0-based): exponential, with the upper half jittered so clients spread out. */
export function backoffMs(policy: RetryPolicy, retry: number): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** retry);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** Resolves after `ms`, or rejects with CancelledError as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(cancelled(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(cancelled(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export function cancelled(signal: AbortSignal): CancelledError {
  return new CancelledError("call cancelled by the caller", { code: 1, reason: "CANCELLED", cause: signal.reason });
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
