/**
 * Finishes every transfer, whoever started it: a catch-up subscription to the
 * transfer streams (`transfer-*` on $all), checkpointed in the same store,
 * keeps the set of transfers that are not final yet; one that is still
 * pending `recoveryAfterMs` after this process saw it is driven by this
 * process (transfer-process.ts; the server that took the request normally
 * finishes it long before). Every server runs one, so a transfer left behind
 * by a server that died is finished by any other running server, or by the
 * next one to start, within about `recoveryAfterMs`. Driving a transfer
 * twice, or on two servers at once, is harmless.
 *
 * The checkpoint (stream `transfer-$process-checkpoint`: inside the filter, so
 * its own writes are seen and not taken for progress; `$` keeps it apart from
 * every transfer id) is the position up to which every transfer requested is
 * final, so a restart replays only the tail. Where the store sends checkpoints
 * (SQLite), it also moves past the other streams' events. It is written at
 * most every `checkpointEveryMs`, and only after progress (a transfer event,
 * or 10,000 other events passed over), so idle servers write nothing. Servers
 * share it; each writes the position it has reached, and any of these is a
 * safe place to start.
 */
import type { Logger } from "pino";
import { randomUUID } from "node:crypto";
import type { ExistingTransfer } from "../domain/transfer.js";
import type { EventStore, Subscription } from "../store/event-store.js";
import { TRANSFER_STREAM_PREFIX } from "./transfer-aggregate.js";
import type { TransferProcess } from "./transfer-process.js";

export const CHECKPOINT_STREAM = `${TRANSFER_STREAM_PREFIX}$process-checkpoint`;
/** Other streams' events passed over that make a checkpoint worth writing (a restart skips them). */
const CHECKPOINT_AFTER_EVENTS = 10_000;
const CHECKPOINT_EVENT = "CheckpointReached";

export interface TransferProcessManagerOptions {
  store: EventStore;
  process: TransferProcess;
  /** Reads a transfer's current state from the store. */
  getTransfer(transferId: string): Promise<ExistingTransfer>;
  logger: Logger;
  /** How long a transfer may stay pending before this process drives it. */
  recoveryAfterMs: number;
  checkpointEveryMs?: number;
  /** Transfers driven at once by recovery. */
  concurrency?: number;
}

export class TransferProcessManager {
  /** Pending transfers: when this process first saw them pending. */
  private readonly pending = new Map<string, number>();
  private readonly driving = new Set<string>();
  /** Transfer events since the checkpoint, in order; the head is popped once its transfer is final. */
  private readonly seen: Array<{ position: string; transferId?: string }> = [];
  private checkpoint: string | undefined;
  private written: string | undefined;
  private lastWrite = 0;
  /** A transfer event was seen since the last write. */
  private progress = false;
  /** Other streams' events passed over since the last write. */
  private passed = 0;
  private subscription: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly options: TransferProcessManagerOptions) {}

  async start(): Promise<void> {
    if (this.closed) return;
    this.checkpoint = this.written = await this.readCheckpoint();
    this.subscription = this.options.store.subscribeToAll({
      streamPrefix: TRANSFER_STREAM_PREFIX,
      // Where the store offers them, checkpoints let the checkpoint move past other streams'
      // events too, so a restart does not read the log again from the last transfer on.
      checkpoints: true,
      ...(this.checkpoint === undefined ? {} : { afterPosition: this.checkpoint }),
    });
    this.running = this.follow(this.subscription);
    const tick = Math.max(50, Math.floor(this.options.recoveryAfterMs / 2));
    this.timer = setInterval(() => void this.recover(), tick);
    this.timer.unref();
  }

  /** Transfers not final yet, as far as this process has seen. */
  pendingCount(): number {
    return this.pending.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.subscription?.close();
    await this.running;
  }

  private async follow(subscription: Subscription): Promise<void> {
    try {
      for await (const message of subscription) {
        if (message.type === "checkpoint") {
          this.passed += message.passed;
          this.seen.push({ position: message.position });
        }
        if (message.type !== "event") continue;
        const { event } = message;
        if (event.stream === CHECKPOINT_STREAM) {
          this.seen.push({ position: event.position });
          continue;
        }
        this.progress = true;
        const transferId = event.stream.slice(TRANSFER_STREAM_PREFIX.length);
        if (event.type === "TransferRequested") {
          if (!this.pending.has(transferId)) this.pending.set(transferId, Date.now());
          this.seen.push({ position: event.position, transferId });
        } else {
          if (event.type === "TransferCompleted" || event.type === "TransferFailed") this.pending.delete(transferId);
          this.seen.push({ position: event.position });
        }
      }
    } catch (error) {
      if (this.closed) return;
      // The store went away for good (e.g. EventStoreDB past its resubscribe limit): start over from the checkpoint.
      this.options.logger.warn({ err: error }, "transfer process subscription ended; restarting it from the checkpoint");
      await new Promise((resolve) => setTimeout(resolve, this.options.recoveryAfterMs).unref());
      if (this.closed) return;
      clearInterval(this.timer);
      this.pending.clear();
      this.seen.length = 0;
      await this.start().catch((startError: unknown) => this.options.logger.error({ err: startError }, "transfer process could not restart"));
    }
  }

  private async recover(): Promise<void> {
    const now = Date.now();
    const limit = this.options.concurrency ?? 16;
    for (const [transferId, since] of this.pending) {
      if (this.driving.size >= limit) break;
      if (now - since < this.options.recoveryAfterMs || this.driving.has(transferId)) continue;
      this.driving.add(transferId);
      void this.drive(transferId).finally(() => this.driving.delete(transferId));
    }
    await this.advanceCheckpoint(now);
  }

  private async drive(transferId: string): Promise<void> {
    try {
      const transfer = await this.options.getTransfer(transferId);
      const final = await this.options.process.drive(transfer);
      this.options.logger.info({ transferId, status: final.status }, "transfer finished by recovery");
    } catch (error) {
      // Not decided now (e.g. the store is away): try again after another period.
      if (this.pending.has(transferId)) this.pending.set(transferId, Date.now());
      this.options.logger.warn({ err: error, transferId }, "transfer recovery step failed; retrying later");
    }
  }

  private async advanceCheckpoint(now: number): Promise<void> {
    let popped = 0;
    while (popped < this.seen.length) {
      const head = this.seen[popped]!;
      if (head.transferId !== undefined && this.pending.has(head.transferId)) break;
      this.checkpoint = head.position;
      popped++;
    }
    this.seen.splice(0, popped);
    const worthIt = this.progress || this.passed >= CHECKPOINT_AFTER_EVENTS;
    if (!worthIt || this.checkpoint === undefined || this.checkpoint === this.written || now - this.lastWrite < (this.options.checkpointEveryMs ?? 1_000)) return;
    const position = this.checkpoint;
    this.lastWrite = now;
    this.progress = false;
    this.passed = 0;
    try {
      await this.options.store.append(
        CHECKPOINT_STREAM,
        [{ id: randomUUID(), type: CHECKPOINT_EVENT, data: { position }, metadata: { commandId: "checkpoint", correlationId: "transfer-process", causationId: "transfer-process" } }],
        "any",
      );
      this.written = position;
    } catch (error) {
      this.progress = true; // try again at the next tick
      this.options.logger.warn({ err: error }, "transfer process checkpoint not written; trying again later");
    }
  }

  private async readCheckpoint(): Promise<string | undefined> {
    const result = await this.options.store.readStream(CHECKPOINT_STREAM, { direction: "backwards", maxCount: 1 });
    if (result.status === "no_stream") return undefined;
    const position = result.events[0]?.data.position;
    return typeof position === "string" ? position : undefined;
  }
}
