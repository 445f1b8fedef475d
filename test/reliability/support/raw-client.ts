/**
 * A gRPC client that sends raw bytes as the request body (identity
 * serializers), for any AccountService method, unary or server streaming.
 * One client per address; close() when done.
 */
import { credentials, makeGenericClientConstructor, Metadata, type Client, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";

export const UNARY_METHODS = ["OpenAccount", "Deposit", "Withdraw", "CloseAccount", "GetAccount", "ReadAccountEvents"] as const;
export const STREAM_METHODS = ["SubscribeAccount", "SubscribeAll"] as const;
export type RawMethod = (typeof UNARY_METHODS)[number] | (typeof STREAM_METHODS)[number];

export type RawOutcome = { ok: true; body: Buffer | undefined } | { ok: false; error: ServiceError };

const identity = (value: Buffer) => value;

export class RawClient {
  private readonly client: Client & Record<string, Function>;

  constructor(address: string) {
    const definition: Record<string, object> = {};
    for (const method of [...UNARY_METHODS, ...STREAM_METHODS]) {
      definition[method] = {
        path: `/bank.v1.AccountService/${method}`,
        requestStream: false,
        responseStream: (STREAM_METHODS as readonly string[]).includes(method),
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      };
    }
    const Constructor = makeGenericClientConstructor(definition as never, "RawAccountService");
    this.client = new Constructor(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }) as Client & Record<string, Function>;
  }

  /** Unary: the response bytes or the error. Server streaming: the first message (then cancels), or the error. */
  send(method: RawMethod, body: Buffer, timeoutMs = 10_000): Promise<RawOutcome> {
    const deadline = new Date(Date.now() + timeoutMs);
    if ((STREAM_METHODS as readonly string[]).includes(method)) {
      return new Promise((resolve) => {
        const stream = this.client[method]!(body, new Metadata(), { deadline }) as ClientReadableStream<Buffer>;
        let settled = false;
        stream.on("data", (message: Buffer) => {
          if (settled) return;
          settled = true;
          stream.cancel();
          resolve({ ok: true, body: message });
        });
        stream.on("error", (error: ServiceError) => {
          if (settled) return;
          settled = true;
          resolve({ ok: false, error });
        });
        stream.on("end", () => {
          if (settled) return;
          settled = true;
          resolve({ ok: true, body: undefined });
        });
      });
    }
    return new Promise((resolve) => {
      this.client[method]!(body, new Metadata(), { deadline }, (error: ServiceError | null, response: Buffer) =>
        resolve(error ? { ok: false, error } : { ok: true, body: response }),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
