/**
 * The baseline: bank.v1.AccountService on plain @grpc/grpc-js, answering from
 * memory at once, with no validation, storage or logging. It is the ceiling
 * eventbank is compared with: what the RPC layer alone costs on this machine.
 *
 * Run as its own process (PORT, HOST from the environment); prints one JSON
 * line `{"msg":"echo listening","address":...}` when ready.
 */
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import { AccountStatus, type Account } from "../client/src/gen/bank/v1/account.js";
import { AccountServiceService, type AccountServiceServer } from "../client/src/gen/bank/v1/account_service.js";

const accounts = new Map<string, Account>();

type Unary<Req, Res> = (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void;

const change =
  <Req extends { accountId: string }>(apply: (account: Account, request: Req) => void): Unary<Req, { account: Account; revision: bigint }> =>
  (call, callback) => {
    const account = accounts.get(call.request.accountId);
    if (!account) return callback({ code: status.NOT_FOUND, details: "no such account" });
    apply(account, call.request);
    account.revision += 1n;
    callback(null, { account, revision: account.revision });
  };

const unimplemented = (call: { emit(event: "error", error: unknown): unknown }) =>
  call.emit("error", { code: status.UNIMPLEMENTED, details: "not in the baseline" });

const service: AccountServiceServer = {
  openAccount: (call, callback) => {
    const { accountId, owner, currency } = call.request;
    const account: Account = { accountId, owner, currency, balance: 0n, status: AccountStatus.ACCOUNT_STATUS_OPEN, revision: 0n, availableBalance: 0n };
    accounts.set(accountId, account);
    callback(null, { account, revision: 0n });
  },
  deposit: change((account, request) => (account.balance += request.amount)),
  withdraw: change((account, request) => (account.balance -= request.amount)),
  closeAccount: change((account) => (account.status = AccountStatus.ACCOUNT_STATUS_CLOSED)),
  getAccount: (call, callback) => callback(null, { account: accounts.get(call.request.accountId) }),
  readAccountEvents: (_call, callback) => callback(null, { events: [] }),
  subscribeAccount: unimplemented,
  // The streaming ceiling: AccountEvent messages made from memory as fast as
  // the client takes them (the same flow control as eventbank: wait for
  // "drain" when write() says so), one message per event.
  subscribeAll: (call) => {
    const occurredAt = new Date();
    let position = 0;
    let cancelled = false;
    call.on("cancelled", () => (cancelled = true));
    const pump = () => {
      while (!cancelled) {
        position++;
        const event = {
          accountId: `account-${position % 100_000}`,
          revision: BigInt(Math.floor(position / 100_000)),
          position: String(position),
          eventId: "0b6d8a43-6f2e-5c07-9b9e-4f1d2a7c3e5b",
          commandId: `seed-${position}`,
          occurredAt,
          correlationId: "",
          payload: { $case: "deposited" as const, value: { amount: 100n } },
        };
        if (!call.write({ message: { $case: "event", value: event } })) return void call.once("drain", pump);
      }
    };
    pump();
  },
};

const server = new Server();
server.addService(AccountServiceService, service);
const host = process.env.HOST ?? "127.0.0.1";
const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync(`${host}:${process.env.PORT ?? "0"}`, ServerCredentials.createInsecure(), (error, bound) =>
    error ? reject(error) : resolve(bound),
  ),
);
process.stdout.write(`${JSON.stringify({ msg: "echo listening", address: `${host}:${port}` })}\n`);
process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
