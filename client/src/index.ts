/** @eventbank/client: a typed client for the eventbank AccountService. */
export {
  createAccountClient,
  type AccountClient,
  type AccountClientOptions,
  type CallOptions,
  type CloseAccountInput,
  type MoneyInput,
  type OpenAccountInput,
  type ReadEventsOptions,
  type SubscribeAccountOptions,
  type SubscribeAllOptions,
  type SubscribeOptions,
  type Subscription,
  type TransferInput,
} from "./account-client.js";
export * from "./errors.js";
export type { RetryOptions } from "./retry.js";
export type * from "./types.js";
// The grpc-js instance this package uses: credentials must come from the same copy.
export { credentials, status } from "@grpc/grpc-js";
