/**
 * Whether the store can serve, for grpc.health.v1: NOT_SERVING from the
 * first store fault a call meets (or a failed probe), SERVING again once a
 * probe succeeds. While the store fails it is probed every `intervalMs`
 * (SQLite: a small real write, so a full disk, a read-only file or a held
 * lock show, and recovery is noticed without traffic; EventStoreDB: a cheap
 * read). A store that can fail without any call noticing (a remote one) is
 * also probed while it serves (`probeWhileServing`).
 */
import { StoreUnavailableError } from "../store/event-store.js";

export interface StoreHealthOptions {
  /** Resolves when the store can serve; throws while it cannot. */
  probe: () => Promise<void>;
  /** Pause between probes. */
  intervalMs: number;
  /** Probe also while the store serves (default false: only after a fault). */
  probeWhileServing?: boolean;
  /** Told of every change; `cause` is the fault that made the store fail. */
  onChange: (serving: boolean, cause?: unknown) => void;
}

export class StoreHealthMonitor {
  private serving = true;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private probing = false;
  /** Counts reported faults, so a probe that started before a fault cannot declare the store healthy. */
  private faults = 0;

  constructor(private readonly options: StoreHealthOptions) {}

  get isServing(): boolean {
    return this.serving;
  }

  /** Starts probing at once when the store is probed while serving (a store down at start-up shows right away). */
  start(): void {
    if (this.options.probeWhileServing) void this.check();
  }

  /** A call met this error; store faults make the store NOT_SERVING until a probe succeeds. */
  reportFault(error: unknown): void {
    if (this.closed || !(error instanceof StoreUnavailableError)) return;
    this.faults++;
    this.set(false, error);
    this.schedule();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.closed || this.timer || this.probing) return;
    if (this.serving && !this.options.probeWhileServing) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.check();
    }, this.options.intervalMs);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    if (this.closed || this.probing) return;
    this.probing = true;
    const faultsBefore = this.faults;
    let failure: unknown;
    try {
      await this.options.probe();
    } catch (error) {
      failure = error ?? new Error("store probe failed");
    } finally {
      this.probing = false;
    }
    if (this.closed) return;
    if (failure !== undefined) this.set(false, failure);
    else if (this.faults === faultsBefore) this.set(true);
    this.schedule();
  }

  private set(serving: boolean, cause?: unknown): void {
    if (this.serving === serving) return;
    this.serving = serving;
    this.options.onChange(serving, cause);
  }
}

/**
 * `target` with every method call watched: a StoreUnavailableError (or
 * subclass) it throws or rejects with is passed to `report` on its way to the
 * caller. Generic, so methods added to a store later are watched too.
 */
export function reportingFaults<T extends object>(target: T, report: (error: StoreUnavailableError) => void): T {
  const note = (error: unknown): void => {
    if (error instanceof StoreUnavailableError) report(error);
  };
  return new Proxy(target, {
    get(object, property) {
      const value: unknown = Reflect.get(object, property, object);
      if (typeof value !== "function") return value;
      return (...args: unknown[]): unknown => {
        let result: unknown;
        try {
          result = (value as (...a: unknown[]) => unknown).apply(object, args);
        } catch (error) {
          note(error);
          throw error;
        }
        if (result instanceof Promise) {
          return result.catch((error: unknown) => {
            note(error);
            throw error;
          });
        }
        return result;
      };
    },
  });
}
