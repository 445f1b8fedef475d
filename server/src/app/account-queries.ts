/** Reads and subscriptions on account streams, for the gRPC layer. */
import { AccountNotFoundError, ValidationError } from "../domain/errors.js";
import { validateAccountId } from "../domain/rules.js";
import {
  ACCOUNT_STREAM_PREFIX,
  accountStream,
  type EventStore,
  type ReadDirection,
  type RecordedEvent,
  type Subscription,
} from "../store/event-store.js";

export const DEFAULT_READ_COUNT = 100;
/** Stores count revisions in a signed 64-bit integer (SQLite and EventStoreDB alike). */
const MAX_REVISION = 2n ** 63n - 1n;
export const MAX_READ_COUNT = 1_000;

export interface ReadAccountEventsQuery {
  accountId: string;
  /** Inclusive; absent: the first event forwards, the last backwards. */
  fromRevision?: bigint;
  /** 0 or absent: DEFAULT_READ_COUNT. */
  maxCount?: number;
  direction?: ReadDirection;
}

export class AccountQueries {
  constructor(private readonly store: EventStore) {}

  async readEvents(query: ReadAccountEventsQuery): Promise<RecordedEvent[]> {
    validateAccountId(query.accountId);
    const maxCount = query.maxCount || DEFAULT_READ_COUNT;
    validateRevision(query.fromRevision);
    if (maxCount < 0 || maxCount > MAX_READ_COUNT) {
      throw new ValidationError("INVALID_ARGUMENT", "max_count", `max_count must be between 0 and ${MAX_READ_COUNT}`);
    }
    const result = await this.store.readStream(accountStream(query.accountId), {
      direction: query.direction ?? "forwards",
      ...(query.fromRevision === undefined ? {} : { fromRevision: query.fromRevision }),
      maxCount,
    });
    if (result.status === "no_stream") throw new AccountNotFoundError(query.accountId);
    return result.events;
  }

  /** Events after `afterRevision` (all when absent); an account not opened yet is waited for. */
  subscribeToAccount(accountId: string, afterRevision?: bigint): Subscription {
    validateAccountId(accountId);
    validateRevision(afterRevision);
    return this.store.subscribeToStream(accountStream(accountId), afterRevision === undefined ? {} : { afterRevision });
  }

  /** Events of every account after `afterPosition` (all when absent). */
  subscribeToAll(afterPosition?: string): Subscription {
    return this.store.subscribeToAll({
      streamPrefix: ACCOUNT_STREAM_PREFIX,
      ...(afterPosition === undefined ? {} : { afterPosition }),
    });
  }
}

function validateRevision(revision: bigint | undefined, field = "from_revision"): void {
  if (revision !== undefined && (revision < 0n || revision > MAX_REVISION)) {
    throw new ValidationError("INVALID_REVISION", field, `${field} must be at most ${MAX_REVISION}`);
  }
}
