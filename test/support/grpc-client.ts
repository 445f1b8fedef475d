/** The generated grpc-js client, promisified for tests, plus ErrorInfo decoding. */
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { AccountServiceClient } from "../../client/src/gen/bank/v1/account_service.js";
import { ErrorInfo } from "../../client/src/gen/google/rpc/error_details.js";
import { Status } from "../../client/src/gen/google/rpc/status.js";

export function connect(address: string): AccountServiceClient {
  return new AccountServiceClient(address, credentials.createInsecure());
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: { deadline?: Date },
  callback: (error: ServiceError | null, response: Res) => void,
) => unknown;

/** `await call(client.deposit, client, request)`; rejects with the ServiceError. */
export function call<Req, Res>(
  client: AccountServiceClient,
  method: UnaryMethod<Req, Res>,
  request: Req,
  options: { deadline?: Date; metadata?: Metadata } = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, options.metadata ?? new Metadata(), options.deadline ? { deadline: options.deadline } : {}, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

export interface DecodedError {
  code: number;
  details: string;
  reason: string | undefined;
  domain: string | undefined;
  metadata: Record<string, string>;
}

export function decodeError(error: unknown): DecodedError {
  const serviceError = error as ServiceError;
  const raw = serviceError.metadata?.get("grpc-status-details-bin")[0];
  let info: ErrorInfo | undefined;
  if (raw instanceof Buffer) {
    const detail = Status.decode(raw).details.find((any) => any.typeUrl.endsWith("/google.rpc.ErrorInfo"));
    if (detail) info = ErrorInfo.decode(detail.value);
  }
  return { code: serviceError.code, details: serviceError.details, reason: info?.reason, domain: info?.domain, metadata: info?.metadata ?? {} };
}

/** Awaits a rejected call and returns its decoded error (fails if the call succeeded). */
export async function rejection(promise: Promise<unknown>): Promise<DecodedError> {
  try {
    await promise;
  } catch (error) {
    return decodeError(error);
  }
  throw new Error("expected the call to fail, but it succeeded");
}
