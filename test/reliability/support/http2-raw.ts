/**
 * Hostile HTTP/2 at a port: raw frames over node:net, and odd-but-legal
 * requests through node:http2. Everything is bounded in time: a connection
 * that stays open is destroyed after `holdMs`.
 */
import { connect as http2Connect, constants, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from "node:http2";
import { connect as tcpConnect } from "node:net";

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export const FRAME = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

/** One frame; `declaredLength` lets the header lie about the payload size. */
export function frame(type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(), declaredLength = payload.length): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(declaredLength & 0xffffff, 0, 3);
  header.writeUInt8(type & 0xff, 3);
  header.writeUInt8(flags & 0xff, 4);
  header.writeUInt32BE(streamId >>> 0, 5);
  return Buffer.concat([header, Buffer.from(payload)]);
}

/** HPACK "literal header field without indexing, new name" (lengths below 127, no Huffman). */
export function hpackLiteral(name: string, value: string): Buffer {
  const n = Buffer.from(name, "latin1");
  const v = Buffer.from(value, "latin1");
  if (n.length > 126 || v.length > 126) throw new RangeError("keep HPACK literals short");
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}

/** A HEADERS block for a gRPC call to `path` (optionally with extra headers). */
export function grpcHeaderBlock(path: string, extra: Array<[string, string]> = []): Buffer {
  return Buffer.concat([
    Buffer.from([0x83, 0x86]), // :method POST, :scheme http (static table)
    hpackLiteral(":path", path),
    hpackLiteral(":authority", "127.0.0.1"),
    hpackLiteral("content-type", "application/grpc"),
    hpackLiteral("te", "trailers"),
    ...extra.map(([name, value]) => hpackLiteral(name, value)),
  ]);
}

/** A gRPC length-prefixed message. */
export function grpcMessage(body: Uint8Array, { compressed = false, declaredLength = body.length } = {}): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt8(compressed ? 1 : 0, 0);
  prefix.writeUInt32BE(declaredLength >>> 0, 1);
  return Buffer.concat([prefix, Buffer.from(body)]);
}

export interface RawExchange {
  /** Bytes the server sent back. */
  received: number;
  /** How the connection ended. */
  ended: "closed-by-server" | "held-then-destroyed" | "error";
}

/** Opens a TCP connection, writes `chunks`, half-closes, and waits up to `holdMs` for the server to close. */
export function sendRaw(port: number, chunks: Buffer[], holdMs = 400): Promise<RawExchange> {
  return new Promise((resolve) => {
    let received = 0;
    let done = false;
    const finish = (ended: RawExchange["ended"]) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ received, ended });
    };
    const socket = tcpConnect(port, "127.0.0.1", () => {
      for (const chunk of chunks) socket.write(chunk);
      socket.end();
    });
    const timer = setTimeout(() => finish("held-then-destroyed"), holdMs);
    socket.on("data", (chunk: Buffer) => (received += chunk.length));
    socket.on("error", () => finish("error"));
    socket.on("close", () => finish("closed-by-server"));
  });
}

export interface Http2Answer {
  status?: number;
  grpcStatus?: string;
  grpcMessage?: string;
  error?: string;
  /** Data bytes received. */
  bytes: number;
}

/**
 * One request on its own session through node:http2; resolves with what came
 * back, or `error` (stream or session error). Rejects only on a hang past `timeoutMs`.
 */
export function http2Request(
  port: number,
  headers: OutgoingHttpHeaders,
  write: (stream: ReturnType<ClientHttp2Session["request"]>) => void,
  { timeoutMs = 10_000, sessionOptions = {} }: { timeoutMs?: number; sessionOptions?: Parameters<typeof http2Connect>[1] } = {},
): Promise<Http2Answer> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(`http://127.0.0.1:${port}`, sessionOptions ?? {});
    const answer: Http2Answer = { bytes: 0 };
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (error) answer.error = error;
      session.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      session.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms to ${JSON.stringify(headers).slice(0, 200)}`));
    }, timeoutMs);
    session.on("error", (error) => finish(`session: ${error.message}`));
    session.on("goaway", () => {});
    let stream: ReturnType<ClientHttp2Session["request"]>;
    try {
      stream = session.request(headers, { endStream: false });
    } catch (error) {
      finish(`request: ${(error as Error).message}`);
      return;
    }
    const take = (h: IncomingHttpHeaders) => {
      if (h[":status"] !== undefined) answer.status = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) answer.grpcStatus = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) answer.grpcMessage = decodeURIComponent(String(h["grpc-message"]));
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("data", (chunk: Buffer) => (answer.bytes += chunk.length));
    stream.on("error", (error) => finish(`stream: ${error.message}`));
    stream.on("close", () => finish(stream.rstCode && stream.rstCode !== constants.NGHTTP2_NO_ERROR ? `rst ${stream.rstCode}` : undefined));
    try {
      write(stream);
    } catch (error) {
      finish(`write: ${(error as Error).message}`);
    }
  });
}
