/**
 * Stored events this release cannot read: an event type or schema version
 * written by a newer release (during a rolling deploy, or after a rollback).
 * The account (or subscription) that meets one fails with
 * UNAVAILABLE / UNKNOWN_EVENT_SCHEMA until a release that knows it serves
 * it; nothing is folded, nothing is appended. Each listener hears of a given
 * event once, so the log says it once, not on every call.
 */
import type { StoredEventContext } from "./event-schemas.js";
import { LruCache } from "./lru-cache.js";

export class UnknownEventError extends Error {
  override readonly name = "UnknownEventError";
  readonly reason = "UNKNOWN_EVENT_SCHEMA";
  readonly stream: string;
  readonly accountId: string;
  readonly revision: bigint;
  constructor(
    at: StoredEventContext,
    readonly eventType: string,
    /** As stored (text: it may be anything). */
    readonly schemaVersion: string,
    /** Newest version of this type this release reads; undefined: the type is unknown. */
    readonly knownVersion: number | undefined,
  ) {
    const what = knownVersion === undefined ? `event type ${eventType}` : `${eventType} version ${schemaVersion} (this release reads up to ${knownVersion})`;
    super(`account ${at.accountId} has ${what} at revision ${at.revision}, written by a newer release; retry on an upgraded server`);
    this.stream = at.stream;
    this.accountId = at.accountId;
    this.revision = at.revision;
  }

  get metadata(): Record<string, string> {
    return { account_id: this.accountId, event_type: this.eventType, schema_version: this.schemaVersion, revision: String(this.revision) };
  }
}

type Listener = (error: UnknownEventError) => void;
const listeners = new Set<Listener>();

/**
 * Calls `listener` the first time each unknown event (stream and revision)
 * is met, remembering the last `memory` of them. Returns the unsubscribe function.
 */
export function onUnknownEvent(listener: Listener, memory = 10_000): () => void {
  const seen = new LruCache<string, true>(memory);
  const once: Listener = (error) => {
    const key = `${error.stream}@${error.revision}`;
    if (seen.get(key)) return;
    seen.set(key, true);
    listener(error);
  };
  listeners.add(once);
  return () => listeners.delete(once);
}

export function reportUnknownEvent(error: UnknownEventError): void {
  for (const listener of listeners) listener(error);
}
