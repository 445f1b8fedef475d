/** Caps the server streams open at once, so subscribers cannot exhaust the server. */
import { status } from "@grpc/grpc-js";
import { RpcError } from "./status-mapping.js";

export class SubscriptionLimit {
  private open = 0;

  constructor(readonly max: number) {}

  /** Takes a slot or throws RESOURCE_EXHAUSTED; returns the function that gives it back. */
  admit(): () => void {
    if (this.open >= this.max) {
      throw new RpcError(status.RESOURCE_EXHAUSTED, "TOO_MANY_SUBSCRIPTIONS", `the server allows ${this.max} open subscriptions`, {
        limit: String(this.max),
      });
    }
    this.open++;
    let released = false;
    return () => {
      if (!released) {
        released = true;
        this.open--;
      }
    };
  }

  get size(): number {
    return this.open;
  }
}
