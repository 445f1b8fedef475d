/**
 * Domain events <-> stored events: the one place that reads stored events.
 * Every stored event carries its schema version in its metadata
 * (`schemaVersion`; events written before versions existed have none and are
 * version 1). Older versions are upcast to the current shape here, so
 * `evolve` only ever sees current events. The shapes live in event-schemas.ts.
 */
import type { AccountEvent, AccountEventType } from "../domain/account.js";
import { ACCOUNT_STREAM_PREFIX, type RecordedEvent } from "../store/event-store.js";
import { EVENT_SCHEMAS, type EventSchema, type StoredData, type StoredEventContext } from "./event-schemas.js";
import { reportUnknownEvent, UnknownEventError } from "./unknown-events.js";

/** Metadata key of the schema version. */
export const SCHEMA_VERSION_KEY = "schemaVersion";

/** The stored data of a domain event, in the version this release writes. */
export function encodeEventData(event: AccountEvent): StoredData {
  const schema = schemaOf(event.type)!;
  return schema.encode[schema.written]!(event);
}

/** The schema version encodeEventData writes for this event type (stored in the event's metadata). */
export function eventSchemaVersion(type: AccountEventType): number {
  return schemaOf(type)!.written;
}

export type StoredEvent = Pick<RecordedEvent, "type" | "data" | "stream" | "revision"> & { metadata?: RecordedEvent["metadata"] };

/**
 * The current domain event of a stored one. An event type or version this
 * release does not know (written by a newer release) throws
 * UnknownEventError; data a known version cannot have is a plain Error (a bug
 * or a damaged store).
 */
export function decodeEvent(recorded: StoredEvent): AccountEvent {
  const at: StoredEventContext = {
    stream: recorded.stream,
    revision: recorded.revision,
    accountId: recorded.stream.startsWith(ACCOUNT_STREAM_PREFIX) ? recorded.stream.slice(ACCOUNT_STREAM_PREFIX.length) : recorded.stream,
  };
  const stored: unknown = recorded.metadata?.[SCHEMA_VERSION_KEY];
  const version = stored === undefined ? 1 : stored;
  const schema = schemaOf(recorded.type);
  if (!schema || !Number.isSafeInteger(version) || (version as number) < 1 || (version as number) > schema.current) {
    const error = new UnknownEventError(at, recorded.type, String(version), schema?.current);
    reportUnknownEvent(error);
    throw error;
  }
  let data = recorded.data;
  for (let from = version as number; from < schema.current; from++) {
    const upcast = schema.upcast[from];
    if (!upcast) throw new Error(`no upcaster for ${recorded.type} v${from} (${at.stream}@${at.revision})`);
    data = upcast(data, at);
  }
  return schema.decode(data, at);
}

/** The entry of a stored type name, if this release knows it (own keys only: "toString" is no event type). */
function schemaOf(type: string): EventSchema<AccountEvent> | undefined {
  // Each entry only ever sees events of its own type, so widening it is safe.
  return Object.hasOwn(EVENT_SCHEMAS, type) ? (EVENT_SCHEMAS[type as AccountEventType] as unknown as EventSchema<AccountEvent>) : undefined;
}
