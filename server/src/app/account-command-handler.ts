/**
 * Account commands and reads for the gRPC layer: the command runtime over the
 * Account aggregate (see command-runtime.ts for how commands are handled).
 */
import type { AccountCommand, AccountEvent, AccountState, CommandRejection, ExistingAccount } from "../domain/account.js";
import type { EventStore } from "../store/event-store.js";
import { accountAggregate } from "./account-aggregate.js";
import { CommandRuntime, type CommandContext, type CommandHandlerOptions, type Loaded } from "./command-runtime.js";

export type { CommandContext, CommandHandlerOptions } from "./command-runtime.js";

export interface AccountSnapshot {
  account: ExistingAccount;
  /** Stream revision of the last event folded into `account`. */
  revision: bigint;
}

export class AccountCommandHandler {
  private readonly runtime: CommandRuntime<AccountCommand, AccountEvent, AccountState, CommandRejection>;

  constructor(store: EventStore, options: CommandHandlerOptions = {}) {
    this.runtime = new CommandRuntime(accountAggregate, store, options);
  }

  async execute(command: AccountCommand, context: CommandContext): Promise<AccountSnapshot> {
    return snapshotOf(await this.runtime.execute(command, context));
  }

  /** Current state, read through to the store so writes by other processes show. */
  async getAccount(accountId: string): Promise<AccountSnapshot> {
    return snapshotOf(await this.runtime.get(accountId));
  }
}

function snapshotOf({ state, revision }: Loaded<AccountState>): AccountSnapshot {
  if (state.status === "none") throw new Error("a command left no account");
  return { account: state, revision };
}
