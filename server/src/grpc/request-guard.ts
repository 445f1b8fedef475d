/**
 * Decoding of request bytes, before any handler runs. Malformed protobuf,
 * invalid UTF-8 and oversize messages become an INVALID_ARGUMENT with a reason
 * (grpc-js alone would answer INTERNAL, or RESOURCE_EXHAUSTED past its own
 * hard limit), and nothing reaches the application.
 */
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { status } from "@grpc/grpc-js";
import { RpcError } from "./status-mapping.js";

const REJECTED = Symbol("rejected request");

export interface RejectedRequest {
  [REJECTED]: RpcError;
}

// ignoreBOM: a leading U+FEFF is part of the string as sent (the default would drop it,
// so "\uFEFFalice" would pass as "alice"); validation sees every character.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function guardedDeserializer<T>(
  decode: (reader: BinaryReader) => T,
  maxBytes: number,
): (bytes: Buffer) => T | RejectedRequest {
  return (bytes) => {
    if (bytes.length > maxBytes) {
      return reject(
        new RpcError(status.INVALID_ARGUMENT, "MESSAGE_TOO_LARGE", `request of ${bytes.length} bytes exceeds the limit of ${maxBytes}`, {
          limit: String(maxBytes),
        }),
      );
    }
    try {
      return decode(new BinaryReader(bytes, (utf8) => strictUtf8.decode(utf8)));
    } catch (error) {
      return reject(
        new RpcError(status.INVALID_ARGUMENT, "MALFORMED_REQUEST", `request is not a valid protobuf message: ${(error as Error).message}`),
      );
    }
  };
}

function reject(error: RpcError): RejectedRequest {
  return { [REJECTED]: error };
}

export function rejectionOf(request: unknown): RpcError | undefined {
  return typeof request === "object" && request !== null && REJECTED in request ? (request as RejectedRequest)[REJECTED] : undefined;
}
