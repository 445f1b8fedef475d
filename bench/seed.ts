/**
 * Seeds long account streams straight into a SQLite file through the store
 * adapter, in batches, instead of through 100,000 RPCs. The events are what
 * the server itself would have written: an AccountOpened, then deposits, each
 * with its own command id and derived event id.
 */
import { encodeEventData } from "../server/src/app/event-codec.js";
import { eventIdFor } from "../server/src/app/event-ids.js";
import type { AccountEvent } from "../server/src/domain/account.js";
import { accountStream, type NewEvent } from "../server/src/store/event-store.js";
import { SqliteEventStore } from "../server/src/store/sqlite-event-store.js";

const BATCH = 1_000;

/** Each account gets `length` events: revision 0 is the opening, the rest are deposits of 1. */
export async function seedStreams(file: string, accounts: Array<{ accountId: string; length: number }>): Promise<void> {
  const store = new SqliteEventStore(file);
  try {
    for (const { accountId, length } of accounts) {
      const stream = accountStream(accountId);
      for (let from = 0; from < length; from += BATCH) {
        const events: NewEvent[] = [];
        for (let revision = from; revision < Math.min(length, from + BATCH); revision++) {
          const event: AccountEvent =
            revision === 0
              ? { type: "AccountOpened", data: { accountId, owner: "Bench", currency: "EUR" } }
              : { type: "MoneyDeposited", data: { amount: 1n } };
          const commandId = `seed-${revision}`;
          events.push({
            id: eventIdFor(stream, commandId, 0),
            type: event.type,
            data: encodeEventData(event),
            metadata: { commandId, correlationId: commandId, causationId: commandId },
          });
        }
        await store.append(stream, events, from === 0 ? "no_stream" : BigInt(from - 1));
      }
    }
  } finally {
    await store.close();
  }
}
