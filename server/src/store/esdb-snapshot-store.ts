/**
 * Snapshots in EventStoreDB: each stream's snapshots go to their own stream,
 * `snapshot-<stream>` (e.g. `snapshot-account-alice`), whose metadata says
 * `$maxCount: 1`, so the database keeps only the latest and scavenges the
 * rest. Reading is one backwards read of one event.
 *
 * Snapshot streams do not start with `account-`, so SubscribeAll (filtered
 * on that prefix) never sees them.
 */
import { BACKWARDS, END, EventStoreDBClient, jsonEvent, StreamNotFoundError } from "@eventstore/db-client";
import { StoreUnavailableError } from "./event-store.js";
import type { SnapshotStore, StoredSnapshot } from "./snapshot-store.js";

export const SNAPSHOT_EVENT_TYPE = "Snapshot";
export const snapshotStream = (stream: string): string => `snapshot-${stream}`;

/** The event data of a snapshot; the revision as a decimal string (JSON has no bigint). */
type SnapshotData = {
  revision: string;
  version: number;
  state: unknown;
};

export class EsdbSnapshotStore implements SnapshotStore {
  constructor(
    private readonly client: EventStoreDBClient,
    /** Whether close() disposes of the client (true when this store created it). */
    private readonly ownsClient = false,
    /** Longest wait for a snapshot read, in ms. */
    private readonly timeoutMs = 5_000,
  ) {}

  static fromConnectionString(connectionString: string): EsdbSnapshotStore {
    return new EsdbSnapshotStore(EventStoreDBClient.connectionString(connectionString), true);
  }

  async read(stream: string): Promise<StoredSnapshot | undefined> {
    const read = this.client.readStream(snapshotStream(stream), { direction: BACKWARDS, fromRevision: END, maxCount: 1 });
    const latest = async (): Promise<StoredSnapshot | undefined> => {
      let found: StoredSnapshot | undefined;
      // Read to the end (one event) rather than returning from inside the loop: a read
      // abandoned mid-call keeps the client from ever finishing dispose().
      for await (const resolved of read) {
        const event = resolved.event;
        if (found || !event?.isJson || event.type !== SNAPSHOT_EVENT_TYPE) continue;
        const { revision, version, state } = event.data as SnapshotData;
        found = { stream, revision: BigInt(revision), version, state: JSON.stringify(state) };
      }
      return found;
    };
    let timer: NodeJS.Timeout | undefined;
    // The client puts no deadline on reads: a snapshot that does not come is not worth waiting for.
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        void read.cancel();
        reject(new Error(`no answer in ${this.timeoutMs} ms`));
      }, this.timeoutMs);
    });
    try {
      return await Promise.race([latest(), timeout]);
    } catch (error) {
      if (error instanceof StreamNotFoundError) return undefined;
      throw new StoreUnavailableError(`cannot read the snapshot of ${stream}: ${(error as Error).message}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  async write(snapshot: StoredSnapshot): Promise<void> {
    const name = snapshotStream(snapshot.stream);
    const data: SnapshotData = { revision: snapshot.revision.toString(), version: snapshot.version, state: JSON.parse(snapshot.state) };
    const result = await this.client.appendToStream(name, jsonEvent({ type: SNAPSHOT_EVENT_TYPE, data }));
    // Set $maxCount with the stream's first snapshot, and again now and then in case that write was lost.
    if (result.nextExpectedRevision % 1000n === 0n) await this.client.setStreamMetadata(name, { maxCount: 1 });
  }

  async close(): Promise<void> {
    if (this.ownsClient) await this.client.dispose();
  }
}
