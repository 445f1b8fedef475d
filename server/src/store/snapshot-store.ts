/**
 * The SnapshotStore port: the latest snapshot of a stream's folded state, so
 * loading a long stream reads one snapshot plus the events after it instead
 * of the whole history. Snapshots are a cache of what the events say: losing
 * one costs a longer replay, never correctness, so adapters may write them
 * with weaker durability than events.
 */

export interface StoredSnapshot {
  /** The event stream this is a snapshot of, e.g. `account-alice`. */
  stream: string;
  /** Revision of the last event folded into `state`. */
  revision: bigint;
  /**
   * Version of the code that folded `state`. A reader ignores a snapshot of
   * any other version and replays the stream instead of misreading it.
   */
  version: number;
  /** JSON text, opaque to the store. */
  state: string;
}

export interface SnapshotStore {
  /** The latest snapshot of the stream, or undefined when there is none. */
  read(stream: string): Promise<StoredSnapshot | undefined>;
  /** Keeps the snapshot unless the store already has one at a later revision. */
  write(snapshot: StoredSnapshot): Promise<void>;
  close(): Promise<void>;
}
